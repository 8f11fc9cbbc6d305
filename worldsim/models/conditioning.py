"""What a clip is conditioned on (`Cond`), and how it becomes one vector per frame that modulates every block.

Each condition group (actions, camera, params, text) has a learned null embedding. It stands in when the group is
absent, when the caller nulls it (`cond.without("text")`, for classifier-free guidance), and, in training, at random
with probability `cond_dropout` per sample and group, so the unconditional model that guidance needs is learned too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import torch
from torch import nn

from worldsim.errors import ActionError, ConfigError
from worldsim.models.caption_facts import facts_dim, object_slots, read_facts
from worldsim.models.config import DiTConfig
from worldsim.models.layout import FactsLayout
from worldsim.models.text import TextEncoder, detokenize, tokenize

GROUPS = ("actions", "camera", "params", "text")


@dataclass(frozen=True)
class Cond:
    """Conditioning of a batch of B clips of T frames; every field is optional.

    actions (B, T, action_dim) float, action_ids (B, T) long; camera (B, T, camera_dim) float, camera_ids (B, T)
    long; params (B, param_dim) float; text: B captions (None for a clip without one: its text is the null
    embedding) or (B, L) byte ids; reversed (B,) bool: the clip plays backward (`DiTConfig.time_reversal`; None:
    forward). `null`: groups replaced by their learned null embedding for the whole batch.
    """

    actions: torch.Tensor | None = None
    action_ids: torch.Tensor | None = None
    camera: torch.Tensor | None = None
    camera_ids: torch.Tensor | None = None
    params: torch.Tensor | None = None
    text: torch.Tensor | list[str | None] | None = None
    reversed: torch.Tensor | None = None
    null: frozenset[str] = field(default_factory=frozenset)

    _PER_FRAME = ("actions", "action_ids", "camera", "camera_ids")

    def without(self, *groups: str) -> Cond:
        """The same conditioning with `groups` nulled (e.g. `cond.without("text")` for text guidance)."""
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise ConfigError(f"unknown condition group {sorted(unknown)[0]!r}; groups: {GROUPS}", source="Cond",
                              field="null")
        return replace(self, null=frozenset(self.null | set(groups)))

    def withhold_text(self, withheld: torch.Tensor) -> Cond:
        """The same conditioning with the captions of the clips where `withheld` (B,) bool is True taken away (None:
        their text's null embedding), e.g. for training clips that must be continued from their frames alone."""
        if not isinstance(self.text, list) or len(self.text) != len(withheld):
            raise ConfigError(f"captions are withheld per clip from a list of one caption per clip; got "
                              f"{type(self.text).__name__} for {len(withheld)} clips", source="Cond", field="text")
        return replace(self, text=[None if w else t for t, w in zip(self.text, withheld.tolist())])

    def frames(self, start: int, stop: int) -> Cond:
        """The per-frame fields cut to frames [start, stop) (per-clip fields unchanged), for cached rollout."""
        return replace(self, **{k: getattr(self, k)[:, start:stop] for k in self._PER_FRAME
                                if getattr(self, k) is not None})

    def select(self, index: list[int]) -> Cond:
        """Clips `index` of the batch."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "null" or v is None:
                continue
            out[f.name] = [v[i] for i in index] if isinstance(v, list) else v[index]
        return replace(self, **out)

    @staticmethod
    def cat(conds: list[Cond]) -> Cond:
        """Batch-concatenate conditionings with the same fields and nulls."""
        first = conds[0]
        out = {}
        for f in fields(Cond):
            if f.name == "null":
                continue
            vals = [getattr(c, f.name) for c in conds]
            if all(v is None for v in vals):
                continue
            if any(v is None for v in vals) or any(c.null != first.null for c in conds):
                raise ConfigError("conditionings to batch must set the same fields and nulls", source="Cond",
                                  field=f.name)
            out[f.name] = sum(vals, []) if isinstance(vals[0], list) else torch.cat(vals)
        return replace(first, **out)


def fourier(x: torch.Tensor, dim: int, min_freq: float = 1e-2, max_freq: float = 10.0) -> torch.Tensor:
    """(...,) scalars -> (..., dim) sin/cos features, frequencies geometric in [min_freq, max_freq].

    Smooth over the scalars' range (for noise levels, log(sigma) / 4 spans about [-2, 2]): frequencies far above
    that would make nearby levels look unrelated, which slowed learning a lot in the overfitting tests."""
    half = dim // 2
    freqs = torch.exp(torch.linspace(math.log(min_freq), math.log(max_freq), half, device=x.device))  # (half,)
    ang = x.to(torch.float32)[..., None] * freqs                                                   # (..., half)
    return torch.cat((ang.cos(), ang.sin()), dim=-1)


def _mlp(d_in: int, width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, width), nn.SiLU(), nn.Linear(width, width))


class CondEmbedder(nn.Module):
    """(noise level per frame, Cond) -> (B, T, width): the sum of one embedding per condition."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.noise = _mlp(256, w)  # the network's only view of the noise: a scalar per frame, like any condition
        self.actions = _mlp(cfg.action_dim, w) if cfg.action_dim else None
        self.action_ids = nn.Embedding(cfg.action_classes, w) if cfg.action_classes else None
        self.camera = _mlp(cfg.camera_dim, w) if cfg.camera_dim else None
        self.camera_ids = nn.Embedding(cfg.camera_classes, w) if cfg.camera_classes else None
        self.params = _mlp(cfg.param_dim, w) if cfg.param_dim else None
        self.text = TextEncoder(cfg.text) if cfg.text else None
        self.text_proj = nn.Linear(cfg.text.width, w) if cfg.text else None
        # part of the text group: nulled and dropped with the bytes' embedding, since both read the same caption
        self.facts = _mlp(facts_dim(cfg.text.facts), w) if cfg.text and cfg.text.facts else None
        self.layout = FactsLayout(w) if cfg.text and cfg.text.layout else None
        # Not a group: never dropped or nulled, since a clip's direction is a fact about it, not a hint to guide by.
        self.direction = nn.Embedding(2, w) if cfg.time_reversal else None
        if self.direction is not None:
            nn.init.zeros_(self.direction.weight)  # starts as the forward-only network (fine-tuning keeps its function)
        self.nulls = nn.ParameterDict({g: nn.Parameter(torch.randn(w) * 0.02) for g in GROUPS if self._has(g)})

    def _has(self, group: str) -> bool:
        c = self.cfg
        return {"actions": bool(c.action_dim or c.action_classes), "camera": bool(c.camera_dim or c.camera_classes),
                "params": bool(c.param_dim), "text": c.text is not None}[group]

    def _check(self, cond: Cond, B: int, T: int) -> None:
        c = self.cfg
        for name, dim, err in (("actions", c.action_dim, ActionError), ("camera", c.camera_dim, ConfigError)):
            v = getattr(cond, name)
            if v is None:
                continue
            if not dim:
                raise err(f"this model takes no continuous {name} ({name[:-1] if name == 'actions' else name}_dim=0)",
                          source="Cond", field=name)
            if v.ndim != 3 or v.shape[:2] != (B, T) or v.shape[2] != dim:
                raise err(f"expected (B, T, {dim}) = {(B, T, dim)}, got {tuple(v.shape)}", source="Cond", field=name)
        for name, n, err in (("action_ids", c.action_classes, ActionError), ("camera_ids", c.camera_classes,
                                                                              ConfigError)):
            v = getattr(cond, name)
            if v is None:
                continue
            if not n:
                raise err(f"this model takes no {name}", source="Cond", field=name)
            if v.shape != (B, T) or v.dtype not in (torch.int32, torch.int64):
                raise err(f"expected integer (B, T) = {(B, T)}, got {v.dtype} {tuple(v.shape)}", source="Cond",
                          field=name)
            if v.numel() and (int(v.min()) < 0 or int(v.max()) >= n):
                raise err(f"indices must lie in [0, {n}), got [{int(v.min())}, {int(v.max())}]", source="Cond",
                          field=name)
        if cond.params is not None:
            if not c.param_dim:
                raise ConfigError("this model takes no scene parameters (param_dim=0)", source="Cond", field="params")
            if cond.params.shape != (B, c.param_dim):
                raise ConfigError(f"expected (B, param_dim) = {(B, c.param_dim)}, got {tuple(cond.params.shape)}",
                                  source="Cond", field="params")
        if cond.reversed is not None:
            if not c.time_reversal:
                raise ConfigError("this model was not trained on reversed clips (time_reversal=False)", source="Cond",
                                  field="reversed")
            if cond.reversed.shape != (B,) or cond.reversed.dtype != torch.bool:
                raise ConfigError(f"expected bool (B,) = ({B},), got {cond.reversed.dtype} "
                                  f"{tuple(cond.reversed.shape)}", source="Cond", field="reversed")
        if cond.text is not None:
            if c.text is None:
                raise ConfigError("this model has no text encoder (text=None)", source="Cond", field="text")
            if len(cond.text) != B:
                raise ConfigError(f"expected {B} captions, got {len(cond.text)}", source="Cond", field="text")

    def _facts(self, cond: Cond) -> torch.Tensor:
        """(B, facts_dim) the captions' facts (byte ids are read back to text: a cut caption gives its prefix's)."""
        texts = detokenize(cond.text) if isinstance(cond.text, torch.Tensor) else cond.text
        return read_facts([t or "" for t in texts], self.cfg.text.facts)

    def _group(self, group: str, cond: Cond, B: int, T: int, device, facts: torch.Tensor | None
               ) -> torch.Tensor | None:
        """The group's embedding (B, T, w) or (B, 1, w), or None if absent or nulled."""
        if group in cond.null:
            return None
        parts = []
        if group == "actions":
            if cond.actions is not None:
                parts.append(self.actions(cond.actions.to(device, torch.float32)))          # (B, T, w)
            if cond.action_ids is not None:
                parts.append(self.action_ids(cond.action_ids.to(device)))                    # (B, T, w)
        elif group == "camera":
            if cond.camera is not None:
                parts.append(self.camera(cond.camera.to(device, torch.float32)))            # (B, T, w)
            if cond.camera_ids is not None:
                parts.append(self.camera_ids(cond.camera_ids.to(device)))                    # (B, T, w)
        elif group == "params" and cond.params is not None:
            parts.append(self.params(cond.params.to(device, torch.float32))[:, None])        # (B, 1, w)
        elif group == "text" and cond.text is not None:
            ids = (cond.text if isinstance(cond.text, torch.Tensor)
                   else tokenize([t or "" for t in cond.text], self.cfg.text.max_len))
            parts.append(self.text_proj(self.text(ids.to(device)))[:, None])                 # (B, 1, w)
            if self.facts is not None:
                parts.append(self.facts(facts.to(device))[:, None])                          # (B, 1, w)
        return sum(parts) if parts else None

    def forward(self, noise: torch.Tensor, cond: Cond | None) -> torch.Tensor:
        """noise (B, T) scalars, cond -> (B, T, width)."""
        return self.embed(noise, cond)[0]

    def embed(self, noise: torch.Tensor, cond: Cond | None, grid: tuple[int, int] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """noise (B, T) scalars, cond -> ((B, T, width), and with `TextConfig.layout` and a token `grid` (h, w) the
        first frame's per-token embedding (B, h * w, width), else None). The layout is nulled, absent and dropped
        with the text, clip by clip."""
        B, T = noise.shape
        cond = cond or Cond()
        self._check(cond, B, T)
        c = self.noise(fourier(noise, 256))                                                  # (B, T, w)
        if self.direction is not None:
            back = cond.reversed if cond.reversed is not None else torch.zeros(B, dtype=torch.bool)
            c = c + self.direction(back.to(c.device).long())[:, None]                         # (B, 1, w)
        reads = self.facts is not None and cond.text is not None and "text" not in cond.null
        facts = self._facts(cond) if reads else None                                         # (B, D)
        layout = None
        for g in GROUPS:
            if not self._has(g):
                continue
            null = self.nulls[g].to(c.dtype)                                                 # (w,)
            emb = self._group(g, cond, B, T, noise.device, facts)
            if emb is None:
                c = c + null
                continue
            nulled = None  # (B, 1, 1): clips whose group takes its null, without a caption or dropped in training
            if g == "text" and isinstance(cond.text, list) and None in cond.text:
                nulled = torch.tensor([t is None for t in cond.text], device=c.device)[:, None, None]
            if self.training and self.cfg.cond_dropout > 0:
                drop = torch.rand(B, 1, 1, device=c.device) < self.cfg.cond_dropout
                nulled = drop if nulled is None else nulled | drop
            c = c + (emb if nulled is None else torch.where(nulled, null, emb))
            if g == "text" and self.layout is not None and grid is not None:
                layout = self.layout(object_slots(facts, self.cfg.text.facts).to(c.device), grid)   # (B, S, w)
                layout = layout if nulled is None else layout * (~nulled).to(layout.dtype)
        return c, layout

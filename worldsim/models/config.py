"""Typed configuration of the video DiT and its text encoder (plain frozen dataclasses, YAML-friendly)."""

from __future__ import annotations

from dataclasses import dataclass, field

from worldsim.errors import ConfigError


@dataclass(frozen=True)
class TextConfig:
    """The caption encoder: bytes -> a small transformer trained from scratch -> one pooled vector per caption."""

    width: int = 128
    depth: int = 2
    heads: int = 4
    max_len: int = 128  # bytes; longer captions are cut (a scene's caption runs 300-1,000: docs/training.md)
    # Object slots of the caption's numbers read by its grammar (`caption_facts`: positions, motion, sizes, colours)
    # and embedded beside the bytes; 0: bytes only. The byte encoder never learnt the digits (E75, E76).
    facts: int = 0
    # The facts' objects also placed on the first frame's tokens (`layout.FactsLayout`): an MLP of each slot and the
    # token's place, where a vector that modulates every token alike leaves the crossing to the network (E77).
    layout: bool = False

    def __post_init__(self):
        for name in ("width", "depth", "heads", "max_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", source="TextConfig", field=name)
        if self.facts < 0:
            raise ConfigError(f"must be >= 0, got {self.facts}", source="TextConfig", field="facts")
        if self.layout and not self.facts:
            raise ConfigError("layout places the caption's facts: it needs facts >= 1", source="TextConfig",
                              field="layout")


@dataclass(frozen=True)
class DiTConfig:
    """A spacetime-patch video DiT. Sizes of conditions are 0 where the scene has none."""

    channels: int = 3
    patch: tuple[int, int, int] = (1, 4, 4)  # (pt, ph, pw)
    width: int = 256
    depth: int = 6
    heads: int = 4
    mlp_ratio: float = 4.0
    attention: str = "full"  # "full" (all tokens at once, frame-causal by mask) or "factorised" (space, then time)
    causal: bool = True  # frame t attends to frames <= t only (needed for cached autoregressive rollout)
    action_dim: int = 0  # continuous action vector per frame
    action_classes: int = 0  # discrete action index per frame
    camera_classes: int = 0  # camera index per frame (cuts between named cameras)
    camera_dim: int = 0  # camera vector per frame (e.g. flattened intrinsics + extrinsics)
    param_dim: int = 0  # the scene's conditioned parameters (gravity, mass, ...) per clip
    text: TextConfig | None = field(default_factory=TextConfig)
    cond_dropout: float = 0.1  # in training, each condition group is replaced by its learned null with this chance
    rope_base: float = 100.0  # RoPE wavelengths span 1..base token steps; grids here are at most ~100 per axis
    # Pixels of this many previous frames are stacked onto each frame's patches (channel concatenation: DIAMOND and
    # GameNGen condition on past frames so), giving every token the local motion of its patch without attention.
    history: int = 0
    # With history, each token reads this many pixels of the previous frames around its patch too (a (p + 2 halo)^2
    # window, zero outside the frame): a ball that moves a patch per frame or two is still in its next token's view.
    history_halo: int = 0
    # In bidirectional calls only, pixels of this many *next* frames are embedded into each frame's tokens (a separate
    # embedding, zero at init, unused in causal calls): the backward twin of `history`, for extend backward.
    future: int = 0
    # A learned embedding of which way the clip plays (forward / backward), zero at init, for weights trained on
    # reversed clips too (`data.p_reverse`; set from the data, not by hand): extend backward rolls out in reversed time.
    time_reversal: bool = False
    # The action's spatial path (worldsim.models.warp): each frame's tokens also carry its previous frame translated
    # by a learned linear map of the frame's action (the displacement it commands, px), zero at init. Needs actions
    # and history (E12, E47-E49: through the conditioning vector alone `push`'s sub-pixel action was never learned).
    action_warp: bool = False

    def __post_init__(self):
        if isinstance(self.patch, list):  # from YAML
            object.__setattr__(self, "patch", tuple(self.patch))
        if isinstance(self.text, dict):
            object.__setattr__(self, "text", TextConfig(**self.text))
        src = "DiTConfig"
        if len(self.patch) != 3 or any(p < 1 for p in self.patch):
            raise ConfigError(f"patch must be three positive ints, got {self.patch}", source=src, field="patch")
        if self.attention not in ("factorised", "full"):
            raise ConfigError(f"expected factorised or full, got {self.attention!r}", source=src, field="attention")
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ConfigError(f"width {self.width} must split into {self.heads} heads of even size",
                              source=src, field="heads")
        for name in ("channels", "width", "depth", "heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", source=src, field=name)
        for name in ("history", "future"):
            if getattr(self, name) and self.patch[0] != 1:
                raise ConfigError(f"{name} needs one frame per token (pt = 1), got patch {self.patch}", source=src,
                                  field=name)
        for name in ("action_dim", "action_classes", "camera_classes", "camera_dim", "param_dim", "history", "future",
                     "history_halo"):
            if getattr(self, name) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, name)}", source=src, field=name)
        if self.history_halo and not self.history:
            raise ConfigError("history_halo widens the history's view: it needs history >= 1", source=src,
                              field="history_halo")
        if self.action_warp and not (self.action_dim and self.history):
            raise ConfigError(f"action_warp moves the previous frame by the action: it needs action_dim >= 1 and "
                              f"history >= 1, got {self.action_dim} and {self.history}", source=src,
                              field="action_warp")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.cond_dropout}", source=src, field="cond_dropout")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch[0] * self.patch[1] * self.patch[2]

    @property
    def input_dim(self) -> int:
        """Values per input token: its own patch, the same patch (widened by `history_halo` on each side) of each of
        `history` previous frames, and with `action_warp` the patch of the previous frame moved by the action."""
        _, ph, pw = self.patch
        a = self.history_halo
        warp = self.patch_dim if self.action_warp else 0
        return self.patch_dim + self.channels * self.history * (ph + 2 * a) * (pw + 2 * a) + warp

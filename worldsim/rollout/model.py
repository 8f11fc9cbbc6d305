"""A world model loaded from exported weights, ready to sample: the network, its EDM denoiser, and what it was
trained for (scene, resolutions, frame skip, frame rate, cameras, actions, conditioned parameters).

Everything crossing this boundary is checked here, once, with errors that name the field: frames are uint8
`B T H W C` outside and float `B T C H W` in [-1, 1] inside; actions are float32 within the scene's action box;
cameras are names from the trained list. Nothing here imports training code or Lightning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange

from worldsim.diffusion.edm import EDMConfig, EDMDenoiser
from worldsim.errors import ActionError, ConfigError, WeightsError
from worldsim.models.conditioning import Cond
from worldsim.models.dit import VideoDiT
from worldsim.weights import check_compatible


@dataclass(frozen=True)
class SceneMeta:
    """What exported weights remember about the scene they were trained for (`meta["scene"]`)."""

    name: str
    resolutions: tuple[tuple[int, int], ...]
    frame_skip: int
    fps: float
    cameras: tuple[str, ...]
    action_low: np.ndarray  # (A,)
    action_high: np.ndarray  # (A,)
    param_names: tuple[str, ...]
    windows: tuple[int, ...]
    window_captions: bool = False  # trained on captions of each clip from its own first frame (data.window_captions)

    @classmethod
    def from_meta(cls, meta: dict, source: str | Path) -> SceneMeta:
        s = meta.get("scene") or {}
        try:
            res = s["resolution"]
            res = [res] if res and isinstance(res[0], int) else res
            return cls(name=str(s["name"]), resolutions=tuple((int(h), int(w)) for h, w in res),
                       frame_skip=int(s["frame_skip"]), fps=float(s["fps"]), cameras=tuple(s["cameras"]),
                       action_low=np.asarray(s.get("action_low", []), np.float32),
                       action_high=np.asarray(s.get("action_high", []), np.float32),
                       param_names=tuple(s.get("param_names", [])),
                       windows=tuple(int(w) for w in s.get("windows", [8])),
                       window_captions=bool(s.get("window_captions", False)))
        except (KeyError, TypeError, ValueError) as e:
            raise WeightsError(f"the weights do not say what scene they were trained for: {e}", source=source,
                               field="scene") from None

    @property
    def action_dim(self) -> int:
        return int(self.action_low.shape[0])

    @property
    def train_frames(self) -> int:
        """The longest training clip, in frames (rollout lengths are quoted as multiples of it)."""
        return max(self.windows)


def to_model(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, H, W, 3) -> float (B, T, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.array(frames, dtype=np.uint8))  # a copy: inputs may be read-only views
    return rearrange(x, "b t h w c -> b t c h w").to(torch.float32).div(127.5).sub(1.0)


def to_frames(x: torch.Tensor) -> np.ndarray:
    """float (B, T, 3, H, W) in [-1, 1] -> uint8 (B, T, H, W, 3) (rounded, clipped)."""
    y = x.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)
    return rearrange(y, "b t c h w -> b t h w c").cpu().numpy()


class WorldModel:
    """Loaded weights plus the checks and conversions every rollout and generation mode shares.

    `model = WorldModel.load("run/model.safetensors")`; `model.check(scene="push", resolution=(32, 32),
    frame_skip=20, camera="top")` raises `WeightsError` naming the first field that differs."""

    def __init__(self, net: VideoDiT, meta: dict, source: str | Path = "<memory>"):
        self.net = net.eval()
        self.meta = meta
        self.source = str(source)
        self.scene = SceneMeta.from_meta(meta, source)
        edm = dict((meta.get("loss") or {}).get("edm") or {})
        known = EDMConfig.__dataclass_fields__
        self.edm = EDMConfig(**{k: v for k, v in edm.items() if k in known})
        self.context_sigma = float((meta.get("loss") or {}).get("context_sigma", 0.0))
        self.steps, self.rollout_after, self.stagger = _sampling(meta, source)
        self.denoiser = EDMDenoiser(self.net, self.edm)
        cfg = net.cfg
        if cfg.action_dim != self.scene.action_dim:
            raise WeightsError(f"the network takes {cfg.action_dim} action dimensions, the scene {self.scene.action_dim}",
                               source=source, field="scene.action_dim")

    @property
    def device(self) -> torch.device:
        """Where the network lives; inputs are moved there (noise is drawn on the CPU, so seeds give the same
        samples on any device up to float rounding)."""
        return next(self.net.parameters()).device

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> WorldModel:
        from worldsim.models.load import load_model

        net, meta = load_model(path, device)
        return cls(net, meta, path)

    # --- compatibility ---------------------------------------------------------------------------------------

    def check(self, *, scene: str | None = None, resolution: tuple[int, int] | None = None,
              frame_skip: int | None = None, fps: float | None = None, camera: str | None = None) -> None:
        """Refuse a setting the weights were not trained for (`WeightsError` naming the field)."""
        want: dict[str, Any] = {}
        if scene is not None:
            want["name"] = scene
        if resolution is not None:
            want["resolution"] = tuple(int(v) for v in resolution)
        if frame_skip is not None:
            want["frame_skip"] = int(frame_skip)
        if want:
            meta = {"scene": {**self.meta["scene"], "resolution": [list(r) for r in self.scene.resolutions]}}
            check_compatible(meta, self.source, **want)
        if fps is not None and abs(float(fps) - self.scene.fps) > 1e-6 * self.scene.fps:
            raise WeightsError(f"weights were trained at {self.scene.fps} frames/s, not {fps}", source=self.source,
                               field="scene.fps")
        if camera is not None and camera not in self.scene.cameras:
            raise WeightsError(f"weights were trained for cameras {list(self.scene.cameras)}, not {camera!r}",
                               source=self.source, field="scene.cameras")

    def resolution(self, resolution: int | tuple[int, int] | None) -> tuple[int, int]:
        """(H, W) from an int, a pair or None (the first trained resolution); checked against the weights."""
        if resolution is None:
            return self.scene.resolutions[0]
        hw = (resolution, resolution) if isinstance(resolution, int) else tuple(int(v) for v in resolution)
        self.check(resolution=hw)
        return hw

    # --- inputs -------------------------------------------------------------------------------------------------

    def check_frames(self, frames, resolution: tuple[int, int], field: str = "context") -> np.ndarray:
        """uint8 (B, T, H, W, 3) frames at `resolution`; floats in [0, 255] are accepted if finite and whole."""
        a = np.asarray(frames)
        if a.ndim == 4:
            a = a[None]
        if a.ndim != 5 or a.shape[-1] != 3 or a.shape[1] < 1:
            raise ConfigError(f"expected frames (B, T, H, W, 3), got shape {a.shape}", source=self.source, field=field)
        if tuple(a.shape[2:4]) != tuple(resolution):
            raise ConfigError(f"frames are {a.shape[2]}x{a.shape[3]}, expected {resolution[0]}x{resolution[1]}",
                              source=self.source, field=field)
        if a.dtype != np.uint8:
            if not np.issubdtype(a.dtype, np.number):
                raise ConfigError(f"frames must be numeric, got {a.dtype}", source=self.source, field=field)
            if not np.isfinite(a).all():
                raise ConfigError("frames hold NaN or inf", source=self.source, field=field)
            if a.min() < 0 or a.max() > 255:
                raise ConfigError(f"frame values must lie in [0, 255], got [{a.min()}, {a.max()}]",
                                  source=self.source, field=field)
            a = np.rint(a).astype(np.uint8)
        return a

    def check_actions(self, actions, batch: int, frames: int, field: str = "actions") -> np.ndarray:
        """float32 (B, T, A) within the action box (out-of-range actions are errors, never clipped)."""
        A = self.scene.action_dim
        try:
            a = np.asarray(actions)
        except (TypeError, ValueError):
            raise ActionError("actions must be numeric", source=self.source, field=field) from None
        if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ActionError(f"actions must be a float array, got dtype {a.dtype}", source=self.source, field=field)
        if a.shape != (batch, frames, A):
            raise ActionError(f"expected shape (B, T, A) = {(batch, frames, A)}, got {a.shape}", source=self.source,
                              field=field)
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise ActionError("actions hold NaN or inf", source=self.source, field=field)
        lo, hi = self.scene.action_low, self.scene.action_high
        if a.size and (np.any(a < lo - 1e-6) or np.any(a > hi + 1e-6)):
            raise ActionError(f"actions outside the trained box [{lo.tolist()}, {hi.tolist()}]", source=self.source,
                              field=field)
        return a

    def camera_ids(self, cameras, batch: int, frames: int) -> torch.Tensor:
        """(B, T) long camera indices from a name, a list of T names (multi-shot) or None (the first camera)."""
        names = self.scene.cameras
        if cameras is None:
            cameras = names[0]
        per_frame = [cameras] * frames if isinstance(cameras, str) else list(cameras)
        if len(per_frame) != frames:
            raise ConfigError(f"expected one camera per frame ({frames}), got {len(per_frame)}", source=self.source,
                              field="cameras")
        for c in per_frame:
            if c not in names:
                raise WeightsError(f"weights were trained for cameras {list(names)}, not {c!r}", source=self.source,
                                   field="scene.cameras")
        ids = torch.tensor([names.index(c) for c in per_frame], dtype=torch.long)
        return ids[None].expand(batch, frames).clone()

    def params_tensor(self, params, batch: int) -> torch.Tensor | None:
        """(B, P) conditioned scene parameters from one dict or vector, or a list of B of them."""
        P = self.net.cfg.param_dim
        if not P:
            return None
        if params is None:
            raise ConfigError(f"this model is conditioned on {list(self.scene.param_names)}: give `params`",
                              source=self.source, field="params")
        items = params if isinstance(params, (list, tuple)) and params and not np.isscalar(params[0]) else [params]
        if len(items) == 1:
            items = items * batch
        rows = [self._param_row(p) for p in items]
        if len(rows) != batch:
            raise ConfigError(f"expected {batch} parameter sets, got {len(rows)}", source=self.source, field="params")
        return torch.as_tensor(np.stack(rows), dtype=torch.float32)

    def _param_row(self, p) -> np.ndarray:
        if isinstance(p, dict):
            from worldsim.sim.conditioned import param_vector
            from worldsim.sim.registry import get_scene

            return param_vector(get_scene(self.scene.name).spec, p)
        v = np.asarray(p, np.float32).reshape(-1)
        if v.shape != (self.net.cfg.param_dim,) or not np.isfinite(v).all():
            raise ConfigError(f"expected {self.net.cfg.param_dim} finite values {list(self.scene.param_names)}, got "
                              f"{v.tolist()}", source=self.source, field="params")
        return v

    def cond(self, batch: int, frames: int, *, actions=None, cameras=None, params=None,
             text: str | list[str] | None = None, reversed: bool = False) -> Cond:
        """The conditioning of B clips of T frames. Missing actions are zeros (the recorder's "do nothing" on an
        episode's first frame); missing text is the learned null caption (trained by condition dropout); `reversed`:
        the clips play backward (weights trained with `data.p_reverse`, `net.cfg.time_reversal`)."""
        cfg = self.net.cfg
        if reversed and not cfg.time_reversal:
            raise ConfigError("these weights were not trained on reversed clips (data.p_reverse): they cannot play "
                              "time backward", source=self.source, field="reversed")
        acts = None
        if cfg.action_dim:
            a = np.zeros((batch, frames, cfg.action_dim), np.float32) if actions is None else \
                self.check_actions(actions, batch, frames)
            acts = torch.from_numpy(a)
        cams = self.camera_ids(cameras, batch, frames) if cfg.camera_classes else None
        txt = None
        if text is not None:
            if cfg.text is None:
                raise ConfigError("these weights have no text encoder: they take no caption", source=self.source,
                                  field="text")
            txt = [text] * batch if isinstance(text, (str, bytes)) else list(text)
            if len(txt) != batch:
                raise ConfigError(f"expected {batch} captions, got {len(txt)}", source=self.source, field="text")
            txt = [_caption(t, self.source) for t in txt]
        return Cond(actions=acts, camera_ids=cams, params=self.params_tensor(params, batch), text=txt,
                    reversed=torch.full((batch,), bool(reversed)) if cfg.time_reversal else None)


def _caption(t, source: str) -> str:
    if isinstance(t, (bytes, bytearray)):
        try:
            return bytes(t).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"caption is not UTF-8 ({e.reason} at byte {e.start})", source=source,
                              field="text") from None
    if not isinstance(t, str):
        raise ConfigError(f"a caption must be text, got {type(t).__name__}", source=source, field="text")
    return t


DEFAULT_STEPS = 3  # denoising steps per frame for weights that do not say (DIAMOND samples with about 3)


SAMPLER_KEYS = ("steps", "rollout_after", "stagger")


def _sampling(meta: dict, source: str | Path) -> tuple[int, int | None, int]:
    """The weights' own sampling (`meta["sampler"]`, set at export): denoising steps per frame (else DEFAULT_STEPS),
    `rollout_after`, how many frames of a `t2v` clip are denoised together before the rest are rolled out (else
    None: whole clips together), and `stagger`, how many steps each of those frames settles behind the one before
    (`plans.pyramid`; else 0: all together)."""
    sampler = meta.get("sampler") or {}
    if not isinstance(sampler, dict) or set(sampler) - set(SAMPLER_KEYS):
        raise WeightsError(f"sampler holds only {', '.join(map(repr, SAMPLER_KEYS))}, got {sampler!r}",
                           source=source, field="sampler")
    try:
        steps = check_steps(sampler.get("steps", DEFAULT_STEPS), field="sampler.steps")
        after = sampler.get("rollout_after")
        after = None if after is None else check_rollout_after(after, field="sampler.rollout_after")
        return steps, after, check_stagger(sampler.get("stagger", 0), field="sampler.stagger")
    except ConfigError as e:
        raise WeightsError(e.message, source=source, field=e.field) from None


def check_steps(steps: int, field: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"need a positive number of denoising steps, got {steps!r}", field=field)
    return int(steps)


def check_rollout_after(k: int, field: str = "rollout_after") -> int:
    """A `t2v` clip's frames denoised together before the rest are rolled out: a positive whole number (a clip no
    longer than it is denoised whole)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ConfigError(f"rollout_after must be a positive whole number of frames, got {k!r}", field=field)
    return int(k)


def check_stagger(s: int, field: str = "stagger") -> int:
    """How many denoising steps each `t2v` frame settles behind the one before (`plans.pyramid`): a whole number
    >= 0 (0: all frames together)."""
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0:
        raise ConfigError(f"stagger must be a whole number of steps >= 0, got {s!r}", field=field)
    return int(s)


def check_guidance(guidance: dict[str, float] | None) -> dict[str, float]:
    """Classifier-free guidance scales per condition group (1 = none); negative or non-finite scales are errors."""
    from worldsim.models.conditioning import GROUPS

    out = {}
    for group, scale in (guidance or {}).items():
        if group not in GROUPS:
            raise ConfigError(f"unknown condition group {group!r}; groups: {list(GROUPS)}", field="guidance")
        s = float(scale)
        if not np.isfinite(s) or s < 0:
            raise ConfigError(f"guidance scale for {group} must be finite and >= 0, got {scale!r}",
                              field=f"guidance.{group}")
        out[group] = s
    return out

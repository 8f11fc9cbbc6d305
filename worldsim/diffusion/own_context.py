"""Own-rollout context: training clips whose last context frames are the model's own samples instead of the
recorded ones, while the loss still asks for the recorded frames after them.

Why (E15, E18, E30): a rollout conditions on its own frames, which are fainter and a little off, and the error
compounds. Faded context (`fade.py`) shows the model faint objects, but not objects that drifted the way its own do;
sampling the context with the model itself shows it exactly the errors it makes, and the loss scores the true
continuation (the idea of Self Forcing, Huang et al. 2025, at one or two frames and without a gradient through the
sampler)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldsim.diffusion import plans
from worldsim.diffusion.edm import EDMConfig
from worldsim.diffusion.sampling import sample_euler
from worldsim.errors import ConfigError


@dataclass(frozen=True)
class OwnContextConfig:
    """p: share of the clips whose context is a prefix of at least two frames that get their last `frames` context
    frames (never the first) sampled by the model, each from the frames before it with `steps` Euler steps, as a
    rollout makes them. 0: off, and nothing extra is drawn, so runs without it are unchanged."""

    p: float = 0.0
    frames: int = 1
    steps: int = 3

    def __post_init__(self):
        if not 0.0 <= self.p <= 1.0:
            raise ConfigError(f"must be in [0, 1], got {self.p}", source="OwnContextConfig", field="p")
        for name in ("frames", "steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", source="OwnContextConfig", field=name)


def draw_own(context: torch.Tensor, cfg: OwnContextConfig, shape: tuple[int, ...],
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """For the context mask (B, T): how many trailing context frames each clip has sampled (B,) long, 0 for clips
    not drawn or whose context is not a prefix of >= 2 frames, and the start noise (B, T, C, H, W). None when off."""
    if cfg.p <= 0:
        return None
    B = context.shape[0]
    k = context.long().cumprod(dim=1).sum(dim=1)                                     # (B,) leading context run
    prefix = (k == context.sum(dim=1)) & (k >= 2)
    chosen = prefix & (torch.rand(B, generator=generator) < cfg.p)
    count = torch.where(chosen, (k - 1).clamp(max=cfg.frames), torch.zeros_like(k))
    return count, torch.randn(shape, generator=generator)


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Frames in [-1, 1] as a rollout hands them on: clamped and rounded to 8 bits."""
    return ((x + 1.0) * 127.5).round().clamp(0, 255) / 127.5 - 1.0


@torch.no_grad()
def own_context(denoiser, x: torch.Tensor, cond, context: torch.Tensor, count: torch.Tensor,
                noise: torch.Tensor, steps: int, cfg: EDMConfig) -> torch.Tensor:
    """x (B, T, C, H, W) with, in each clip b, the context frames [k_b - count_b, k_b) (k_b: its context length)
    replaced one by one by the denoiser's causal sample from the frames before them (already replaced ones
    included), started from `noise` at sigma_max. Clips are grouped by the frame they make, one sampler call each."""
    k = context.long().sum(dim=1)                                                    # (B,)
    out = x.detach().clone()
    network = getattr(denoiser, "network", None)
    was_training = bool(getattr(network, "training", False))
    if was_training:
        network.train(False)  # a rollout samples without condition dropout
    try:
        for i in range(int(count.max()) if count.numel() else 0):
            frame = k - count + i                                                    # (B,) the frame made now
            live = count > i
            for j in sorted({int(f) for f in frame[live]}):
                rows = torch.nonzero(live & (frame == j)).flatten().tolist()
                plan = plans.autoregressive(steps, j + 1, context=j, cfg=cfg)        # (steps + 1, j + 1)
                clip = out[rows, : j + 1].clone()                                    # (b, j + 1, C, H, W)
                clip[:, j] = noise[rows, j].to(clip) * plan[0, j]
                part = None if cond is None else cond.select(rows).frames(0, j + 1)
                out[rows, j] = quantize(sample_euler(denoiser, clip, plan, part)[:, j])
    finally:
        if was_training:
            network.train(True)
    return out

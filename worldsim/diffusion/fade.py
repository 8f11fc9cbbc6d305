"""Faded context: training clips whose context frames show their moving objects faded and blurred towards the
clip's static background, while the loss still asks for full-contrast frames.

Why (experiments E2, E15): a rollout's own frames are blurred conditional means, a little fainter than the truth,
and a model trained only on crisp context passes that loss of contrast on, so small objects vanish within a few
frames. Shown faint objects in training, the model learns to draw them back at full contrast."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange

from worldsim.diffusion.edm import per_frame
from worldsim.errors import ConfigError

CHANGED = 0.1  # a pixel moved if it is this far from the clip's temporal median in some channel (13/255)
RADIUS = 2  # blur kernel half-width in px: covers a Gaussian of std up to about 1 px


@dataclass(frozen=True)
class FadeConfig:
    """p: share of clips whose context frames are faded (0: off, and nothing extra is drawn, so runs without it
    are unchanged). Each faded frame keeps alpha ~ U(min_alpha, 1) of its difference from the background, blurred
    by a Gaussian of std ~ U(0, blur) px."""

    p: float = 0.0
    min_alpha: float = 0.3
    blur: float = 1.0

    def __post_init__(self):
        for name, lo, hi in (("p", 0.0, 1.0), ("min_alpha", 0.0, 1.0), ("blur", 0.0, float(RADIUS))):
            if not lo <= getattr(self, name) <= hi:
                raise ConfigError(f"must be in [{lo}, {hi}], got {getattr(self, name)}", source="FadeConfig",
                                  field=name)


def draw_fade(context: torch.Tensor, cfg: FadeConfig,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Per-frame (alpha, blur std), each (B, T), for the context mask (B, T): alpha 1 and blur 0 (untouched) outside
    the context and in clips not drawn. None when `cfg.p` is 0."""
    if cfg.p <= 0:
        return None
    B, T = context.shape
    faded = context & (torch.rand(B, generator=generator) < cfg.p)[:, None]                  # (B, T)
    alpha = cfg.min_alpha + (1 - cfg.min_alpha) * torch.rand(B, T, generator=generator)
    blur = cfg.blur * torch.rand(B, T, generator=generator)
    return torch.where(faded, alpha, torch.ones_like(alpha)), torch.where(faded, blur, torch.zeros_like(blur))


def fade_context(x: torch.Tensor, alpha: torch.Tensor, blur: torch.Tensor) -> torch.Tensor:
    """x (B, T, C, H, W) with its moving objects blurred by `blur` px and kept at `alpha` of their contrast, both
    (B, T). Moving: pixels that differ from the clip's temporal median (walls and bands never do); an object's
    contrast is taken against the frame's 5x5 median, which drops objects of up to 3x3 px. Neither alone will do:
    the temporal median keeps a slow object and would paint its ghost into the other frames, and the spatial one
    erodes thin static lines and corners; so the spatial one is used within 2 px of a changed pixel."""
    changed = (x - x.median(dim=1, keepdim=True).values).abs().amax(dim=2) > CHANGED             # (B, T, H, W)
    near = F.max_pool2d(changed.float(), 5, stride=1, padding=2).bool()  # the whole object, not only its edges
    moving = torch.where(near[:, :, None], x - _median5(x), torch.zeros_like(x))
    return x - moving + per_frame(alpha.to(x.device, x.dtype)) * _blur(moving, blur.to(x.device))


def _median5(x: torch.Tensor) -> torch.Tensor:
    """Per-channel 5x5 median of each frame of x (B, T, C, H, W), edges reflected."""
    H, W = x.shape[-2:]
    flat = rearrange(x, "b t c h w -> (b t c) 1 h w")
    windows = F.unfold(F.pad(flat, (2, 2, 2, 2), mode="reflect"), 5)                     # (BTC, 25, H W)
    med = windows.median(dim=1).values                                                     # (BTC, H W)
    return rearrange(med, "(b t c) (h w) -> b t c h w", b=x.shape[0], t=x.shape[1], h=H, w=W)


def _blur(x: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of each frame of x (B, T, C, H, W) with its own std (B, T); std 0 is the identity."""
    offsets = torch.arange(-RADIUS, RADIUS + 1, device=x.device, dtype=torch.float32)
    s = std.float().clamp(min=1e-6)[..., None]                                             # (B, T, 1)
    k = torch.exp(-0.5 * (offsets / s) ** 2)
    k = (k / k.sum(-1, keepdim=True)).to(x.dtype)                                          # (B, T, 2R+1)
    pad = F.pad(x, (RADIUS, RADIUS, RADIUS, RADIUS))    # zeros: the background's difference from itself
    H, W = x.shape[-2:]
    rows = sum(per_frame(k[..., i]) * pad[..., :, i:i + W] for i in range(2 * RADIUS + 1))  # (B, T, C, H+2R, W)
    return sum(per_frame(k[..., i]) * rows[..., i:i + H, :] for i in range(2 * RADIUS + 1))

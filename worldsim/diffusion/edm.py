"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models") with a noise
level per frame: the preconditioned denoiser D(x; sigma) around any network, the training noise distribution, and
the Karras sigma schedule. Data are pixels in [-1, 1]; x_sigma = x_0 + sigma * n.

A clean frame is sigma = 0, where c_skip = 1 and c_out = 0: the denoiser returns that frame exactly, whatever the
network says. Conditioning frames therefore need no special path in training or sampling.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from worldsim.errors import ConfigError

# A denoiser: (x (B, T, C, H, W), sigma (B, T), cond) -> denoised x_0 estimate (B, T, C, H, W).
Denoiser = Callable[[torch.Tensor, torch.Tensor, object], torch.Tensor]


@dataclass(frozen=True)
class EDMConfig:
    sigma_data: float = 0.5  # std of pixels in [-1, 1] is about this
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    p_mean: float = -1.2  # training log-sigma ~ N(p_mean, p_std^2)
    p_std: float = 1.2
    min_embed_sigma: float = 1e-3  # sigma is floored here before its log goes to the network (clean frames: 0)


def per_frame(v: torch.Tensor) -> torch.Tensor:
    """(B, T) -> (B, T, 1, 1, 1), to scale frames of a (B, T, C, H, W) clip."""
    return v[:, :, None, None, None]


def preconditioning(sigma: torch.Tensor, cfg: EDMConfig) -> tuple[torch.Tensor, ...]:
    """EDM Table 1: c_skip, c_out, c_in and c_noise for sigma (B, T)."""
    sd2 = cfg.sigma_data ** 2
    s2 = sigma.to(torch.float32) ** 2
    c_skip = sd2 / (s2 + sd2)
    c_out = sigma * cfg.sigma_data / (s2 + sd2).sqrt()
    c_in = 1.0 / (s2 + sd2).sqrt()
    c_noise = sigma.clamp(min=cfg.min_embed_sigma).log() / 4
    return c_skip, c_out, c_in, c_noise


class EDMDenoiser:
    """D(x; sigma, cond) = c_skip x + c_out F(c_in x; c_noise, cond), each coefficient per frame.

    `network(x, noise, cond)` is any callable with the video DiT's signature; it never sees sigma itself."""

    def __init__(self, network: Callable, cfg: EDMConfig = EDMConfig()):
        self.network = network
        self.cfg = cfg

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, cond=None, **kwargs) -> torch.Tensor:
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, self.cfg)
        f = self.network(x * per_frame(c_in).to(x.dtype), c_noise, cond, **kwargs)     # (B, T, C, H, W)
        return per_frame(c_skip) * x + per_frame(c_out) * f.to(torch.float32)


def schedule_level(place: torch.Tensor, cfg: EDMConfig, hi: float | None = None, lo: float | None = None
                   ) -> torch.Tensor:
    """EDM eq. 5 read continuously: the level at `place` along the schedule (0: `hi`, 1: `lo`; by default
    sigma_max and sigma_min), spaced by rho."""
    hi = cfg.sigma_max if hi is None else hi
    lo = cfg.sigma_min if lo is None else lo
    return (hi ** (1 / cfg.rho) + place * (lo ** (1 / cfg.rho) - hi ** (1 / cfg.rho))) ** cfg.rho


def karras_sigmas(steps: int, cfg: EDMConfig = EDMConfig(), sigma_max: float | None = None) -> torch.Tensor:
    """EDM eq. 5: `steps` levels from sigma_max down to sigma_min spaced by rho, then a final 0 -> (steps + 1,)."""
    hi = cfg.sigma_max if sigma_max is None else sigma_max
    if steps < 1:
        raise ConfigError(f"need at least one step, got {steps}", source="karras_sigmas", field="steps")
    lo = min(cfg.sigma_min, hi)  # a partial schedule (SDEdit) may start below sigma_min: then it just stops there
    s = schedule_level(torch.linspace(0, 1, steps, dtype=torch.float64), cfg, hi, lo)
    return torch.cat((s, s.new_zeros(1))).to(torch.float32)


def sample_sigma(shape: tuple[int, ...], cfg: EDMConfig, generator: torch.Generator | None = None,
                 device=None) -> torch.Tensor:
    """Training noise levels: log-normal (EDM's P_mean, P_std), one per entry of `shape`."""
    n = torch.randn(shape, generator=generator, device=device)
    return (cfg.p_mean + cfg.p_std * n).exp()


def loss_weight(sigma: torch.Tensor, cfg: EDMConfig) -> torch.Tensor:
    """EDM's lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2: unit-variance target for F."""
    return (sigma ** 2 + cfg.sigma_data ** 2) / (sigma * cfg.sigma_data).clamp(min=1e-12) ** 2


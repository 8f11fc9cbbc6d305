"""Stateless samplers, all with one signature (as in k-diffusion's sampling.py):
`sample_*(denoiser, x, plan, cond=None, *, guidance=None, callback=None, extra_args=None, noise=None) -> x_0`.

`x` is the start (`plans.initial`), `plan` a (steps + 1, frames) matrix of noise levels. Frames whose level does
not change in a step are left bit-identical, so given frames come back exactly. `guidance` maps condition groups
to classifier-free guidance scales, e.g. {"text": 3.0, "actions": 1.5}; 1 means none. `noise(shape)` draws the
fresh noise of the stochastic samplers (`euler_a`); the deterministic ones never call it.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from einops import reduce, repeat

from worldsim.diffusion import plans as _plans
from worldsim.diffusion.edm import Denoiser, per_frame
from worldsim.errors import ConfigError

Noise = Callable[[tuple[int, ...]], torch.Tensor]  # shape -> standard normal noise of that shape


def guided(denoiser: Denoiser, x: torch.Tensor, sigma: torch.Tensor, cond, guidance: dict[str, float] | None,
           extra_args: dict | None = None) -> torch.Tensor:
    """Classifier-free guidance (Ho & Salimans 2022) with one scale per condition group:
    D = D(c) + sum_g (s_g - 1) (D(c) - D(c without g)). `cond.without(g)` gives the nulled conditioning."""
    extra = extra_args or {}
    if cond is None and any(s != 1.0 for s in (guidance or {}).values()):
        raise ConfigError("guidance needs a conditioning to null groups of", source="sampler", field="guidance")
    d = denoiser(x, sigma, cond, **extra)
    out = d
    for group, scale in (guidance or {}).items():
        if scale != 1.0:
            out = out + (scale - 1.0) * (d - denoiser(x, sigma, cond.without(group), **extra))
    return out


def _derivative(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """dx/dsigma = (x - D) / sigma per frame (Karras et al. 2022, eq. 3 with s(t)=1, sigma(t)=t); 0 where sigma=0."""
    s = per_frame(sigma.expand(x.shape[0], -1))
    return torch.where(s > 0, (x - denoised) / s.clamp(min=1e-12), torch.zeros_like(x))


def _levels(plan: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    _plans.check(plan, x.shape[1])
    return plan.to(x.device, torch.float32)


def _step(x: torch.Tensor, d: torch.Tensor, s: torch.Tensor, s_next: torch.Tensor) -> torch.Tensor:
    dt = per_frame((s_next - s).expand(x.shape[0], -1))
    moving = dt != 0
    return torch.where(moving, x + dt * d, x)  # frames whose level stays put are not touched at all


@torch.no_grad()
def sample_euler(denoiser: Denoiser, x: torch.Tensor, plan: torch.Tensor, cond=None, *,
                 guidance: dict[str, float] | None = None, callback: Callable[[dict], None] | None = None,
                 extra_args: dict | None = None, noise: Noise | None = None) -> torch.Tensor:
    """Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 1 without the second-order
    correction), one noise level per frame: x <- x + (sigma' - sigma) (x - D(x; sigma)) / sigma."""
    plan = _levels(plan, x)
    B = x.shape[0]
    for i in range(plan.shape[0] - 1):
        s, s_next = plan[i], plan[i + 1]                                             # (T,) each
        denoised = guided(denoiser, x, s.expand(B, -1), cond, guidance, extra_args)
        x = _step(x, _derivative(x, denoised, s), s, s_next)
        if callback is not None:
            callback({"i": i, "steps": plan.shape[0] - 1, "x": x, "sigma": s, "sigma_next": s_next,
                      "denoised": denoised})
    return x


@torch.no_grad()
def sample_heun(denoiser: Denoiser, x: torch.Tensor, plan: torch.Tensor, cond=None, *,
                guidance: dict[str, float] | None = None, callback: Callable[[dict], None] | None = None,
                extra_args: dict | None = None, noise: Noise | None = None) -> torch.Tensor:
    """Heun's second-order method (Karras et al. 2022, Algorithm 1, deterministic): an Euler step, then the
    average of the slopes at both ends; frames stepping to sigma' = 0 keep the Euler step (as in the paper)."""
    plan = _levels(plan, x)
    B = x.shape[0]
    for i in range(plan.shape[0] - 1):
        s, s_next = plan[i], plan[i + 1]
        denoised = guided(denoiser, x, s.expand(B, -1), cond, guidance, extra_args)
        d = _derivative(x, denoised, s)
        x_euler = _step(x, d, s, s_next)
        if (s_next > 0).any():
            d2 = _derivative(x_euler, guided(denoiser, x_euler, s_next.expand(B, -1), cond, guidance, extra_args),
                             s_next)
            second = per_frame((s_next > 0).expand(B, -1))
            x = torch.where(second, _step(x, (d + d2) / 2, s, s_next), x_euler)
        else:
            x = x_euler
        if callback is not None:
            callback({"i": i, "steps": plan.shape[0] - 1, "x": x, "sigma": s, "sigma_next": s_next,
                      "denoised": denoised})
    return x


@torch.no_grad()
def sample_euler_ancestral(denoiser: Denoiser, x: torch.Tensor, plan: torch.Tensor, cond=None, *,
                           guidance: dict[str, float] | None = None, callback: Callable[[dict], None] | None = None,
                           extra_args: dict | None = None, noise: Noise | None = None) -> torch.Tensor:
    """Euler ancestral (k-diffusion's `sample_euler_ancestral`, eta = 1), one noise level per frame: an Euler step
    down to sigma_down, then fresh noise back up to sigma'. Where the context leaves a frame uncertain (a ball's
    position to a pixel), the ODE's first step lands on the blurred mean of the outcomes; the fresh noise lets each
    sample commit to one of them. `noise(shape)` draws it (default: torch's global generator)."""
    plan = _levels(plan, x)
    B = x.shape[0]
    draw = noise or torch.randn
    for i in range(plan.shape[0] - 1):
        s, s_next = plan[i], plan[i + 1]                                             # (T,) each
        denoised = guided(denoiser, x, s.expand(B, -1), cond, guidance, extra_args)
        var_up = s_next ** 2 * (s ** 2 - s_next ** 2) / (s ** 2).clamp(min=1e-24)
        up = torch.where(s > s_next, var_up.clamp(min=0).sqrt().minimum(s_next), torch.zeros_like(s))
        down = (s_next ** 2 - up ** 2).clamp(min=0).sqrt()
        x = _step(x, _derivative(x, denoised, s), s, down)
        if (up > 0).any():
            fresh = draw(tuple(x.shape)).to(x.device, x.dtype)
            x = torch.where(per_frame((up > 0).expand(B, -1)), x + per_frame(up.expand(B, -1)) * fresh, x)
        if callback is not None:
            callback({"i": i, "steps": plan.shape[0] - 1, "x": x, "sigma": s, "sigma_next": s_next,
                      "denoised": denoised})
    return x


def tie_frames(denoiser: Denoiser, pairs: list[tuple[int, int]]) -> Denoiser:
    """A denoiser whose estimates for each pair of frames are replaced by their mean (for `plans.loop`): tied
    frames then end on the same image, since the last step to sigma = 0 lands each frame on its estimate."""

    def tied(x, sigma, cond=None, **kwargs):
        d = denoiser(x, sigma, cond, **kwargs).clone()
        T = x.shape[1]
        for a, b in pairs:
            a, b = a % T, b % T
            mean = (d[:, a] + d[:, b]) / 2
            d[:, a], d[:, b] = mean, mean
        return d

    return tied


def block_means(x: torch.Tensor, factor: tuple[int, int]) -> torch.Tensor:
    """x (B, T, C, H, W) -> its fh x fw block means, spread back over each block (same shape)."""
    fh, fw = factor
    m = reduce(x, "b t c (h fh) (w fw) -> b t c h w", "mean", fh=fh, fw=fw)
    return repeat(m, "b t c h w -> b t c (h fh) (w fw)", fh=fh, fw=fw)


def keep_blocks(denoiser: Denoiser, reference: torch.Tensor, factor: tuple[int, int]) -> Denoiser:
    """A denoiser whose estimates take their fh x fw block means from `reference` (B, T, C, H, W) and add only
    detail within blocks (ILVR, Choi et al. 2021, applied to the estimate): the last step to sigma = 0 lands on an
    estimate, so the sample's block means are the reference's. `preview` renders its draft this way, so the render
    keeps what the draft shows; classifier-free guidance keeps them too (its terms differ by detail only)."""
    coarse = block_means(reference, factor)

    def kept(x, sigma, cond=None, **kwargs):
        d = denoiser(x, sigma, cond, **kwargs)
        return d - block_means(d, factor) + coarse

    return kept


SAMPLERS = {"euler": sample_euler, "heun": sample_heun, "euler_a": sample_euler_ancestral}

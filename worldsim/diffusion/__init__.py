"""Diffusion with a noise level per frame (EDM), around any network with the video DiT's signature:
`EDMDenoiser(network)`, `loss(denoiser, x, cond)`, noise `plans.<mode>(...)`, and stateless samplers
`sample_euler` / `sample_heun` / `sample_euler_ancestral(denoiser, x, plan, cond, guidance=..., callback=...,
noise=...)`."""

from worldsim.diffusion import plans
from worldsim.diffusion.edm import EDMConfig, EDMDenoiser, karras_sigmas, preconditioning
from worldsim.diffusion.loss import LossConfig, context_mask, fixed_grid_loss, loss, next_frame_losses
from worldsim.diffusion.sampling import (SAMPLERS, guided, sample_euler, sample_euler_ancestral,
                                         sample_heun, tie_frames)

__all__ = ["EDMConfig", "EDMDenoiser", "LossConfig", "SAMPLERS", "context_mask", "fixed_grid_loss", "guided",
           "karras_sigmas", "loss", "next_frame_losses", "plans", "preconditioning", "sample_euler", "sample_euler_ancestral", "sample_heun",
           "tie_frames"]

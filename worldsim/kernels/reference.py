"""The torch/einops reference for spacetime patch ops: the definition the CUDA kernels must equal bit for bit,
and the only path on CPU.

Layout: video `(B, T, C, H, W)`; tokens `(B, N, D)` with N ordered `(t h w)` and D ordered `(c pt ph pw)`,
so a run of `pw` neighbouring pixels stays contiguous in both layouts (coalesced reads and writes on a GPU).
"""

from __future__ import annotations

import torch
from einops import rearrange

# uint8 -> [-1, 1] as `x * SCALE - 1` in float32, two separately rounded ops. Written as a multiply (not a divide)
# because torch turns division by a scalar into multiplication by its reciprocal on CUDA; the kernel does the same
# two roundings (__fmul_rn, __fsub_rn, no FMA contraction), so both paths agree bit for bit.
SCALE = 1.0 / 127.5


def patchify(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, N, D): cut a video into spacetime patches."""
    pt, ph, pw = patch
    return rearrange(x, "b (t pt) c (h ph) (w pw) -> b (t h w) (c pt ph pw)", pt=pt, ph=ph, pw=pw).contiguous()


def unpatchify(tokens: torch.Tensor, patch: tuple[int, int, int], size: tuple[int, int, int]) -> torch.Tensor:
    """(B, N, D) -> (B, T, C, H, W) for a video of `size = (T, H, W)`: the inverse of `patchify`."""
    pt, ph, pw = patch
    T, H, W = size
    return rearrange(tokens, "b (t h w) (c pt ph pw) -> b (t pt) c (h ph) (w pw)",
                     t=T // pt, h=H // ph, w=W // pw, pt=pt, ph=ph, pw=pw).contiguous()


def normalize_uint8(x: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 pixels -> float in [-1, 1] (computed in float32, then cast)."""
    return x.to(torch.float32).mul(SCALE).sub(1.0).to(dtype)


def patchify_uint8(x: torch.Tensor, patch: tuple[int, int, int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, T, C, H, W) -> normalised float tokens (B, N, D)."""
    return patchify(normalize_uint8(x, torch.float32), patch).to(dtype)


def patchify_uint8_noised(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, patch: tuple[int, int, int],
                          dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 video, float32 noise of the same shape and per-frame noise levels `sigma` (B, T) ->
    (clean tokens x0, noised tokens x0 + sigma * noise), both (B, N, D): the diffusion training input in one pass."""
    x0 = normalize_uint8(x, torch.float32)                                   # (B, T, C, H, W)
    xt = x0 + sigma.to(torch.float32)[:, :, None, None, None] * noise.to(torch.float32)
    return patchify(x0, patch).to(dtype), patchify(xt, patch).to(dtype)

"""Rotary position embeddings over any subset of the (t, h, w) token axes, for grids of any size: positions are
token indices, so a model trained on one duration, resolution or aspect ratio runs on another, and attention scores
depend only on offsets (a rollout past the training length sees the same relative geometry)."""

from __future__ import annotations

import torch


def axis_pairs(head_dim: int, axes: int) -> list[int]:
    """How many rotated (even, odd) pairs each axis gets: the head's pairs split as evenly as possible."""
    pairs = head_dim // 2
    return [pairs // axes + (1 if i < pairs % axes else 0) for i in range(axes)]


def rope_tables(positions: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """positions (L, A) for A axes -> cos, sin (L, head_dim // 2): axis a owns a contiguous block of frequencies."""
    L, A = positions.shape
    angles = []
    for a, n in enumerate(axis_pairs(head_dim, A)):
        freqs = base ** (-torch.arange(n, dtype=torch.float32, device=positions.device) / max(n, 1))  # (n,)
        angles.append(positions[:, a, None].to(torch.float32) * freqs)                             # (L, n)
    ang = torch.cat(angles, dim=1)                                                                 # (L, hd/2)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (..., L, head_dim) by the tables (L, head_dim // 2), pairing dimension i with i + head_dim // 2."""
    x1, x2 = x.float().chunk(2, dim=-1)                                       # (..., L, hd/2) each
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).to(x.dtype)


def grid_positions(t: torch.Tensor | None, h: int | None, w: int | None, device=None) -> torch.Tensor:
    """Positions (L, A) of the grid's tokens in (t h w) order, for the axes given (t as a 1-D tensor of indices)."""
    axes = []
    if t is not None:
        axes.append(t.to(device))
    if h is not None:
        axes.append(torch.arange(h, device=device))
    if w is not None:
        axes.append(torch.arange(w, device=device))
    mesh = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([m.reshape(-1) for m in mesh], dim=1)


def sincos_2d(h: int, w: int, dim: int, device=None) -> torch.Tensor:
    """Absolute (h, w) sin-cos embedding (L = h*w, dim), half the channels per axis (as DiT and MAE use).

    RoPE alone is translation-invariant: from a pure-noise frame a network could not know where a token sits, so it
    could not place a wall or a ball. Time gets no absolute embedding: rollouts past the training length then see
    only familiar relative offsets."""
    pos = grid_positions(None, h, w, device).to(torch.float32)                      # (L, 2)
    quarter = dim // 4
    freqs = 1.0 / (10000.0 ** (torch.arange(quarter, device=device, dtype=torch.float32) / max(quarter, 1)))
    out = []
    for a in range(2):
        ang = pos[:, a, None] * freqs                                               # (L, dim/4)
        out += [ang.sin(), ang.cos()]
    emb = torch.cat(out, dim=1)                                                     # (L, 4 * (dim/4))
    return torch.nn.functional.pad(emb, (0, dim - emb.shape[1]))

"""DiT blocks with adaLN-Zero modulation taken per frame: every token of frame t is shifted, scaled and gated by
values computed from frame t's conditioning vector (its noise level, action, camera, ...), so frames at different
noise levels in one clip are each told their own."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from worldsim.models.attention import Attention
from worldsim.models.cache import KVCache


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return torch.addcmul(shift, x, 1 + scale)  # x * (1 + scale) + shift in one pass


def _norm(width: int) -> nn.LayerNorm:
    return nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)  # affine comes from adaLN


class Mlp(nn.Sequential):
    def __init__(self, width: int, ratio: float):
        hidden = int(width * ratio)
        super().__init__(nn.Linear(width, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, width))


class FactorisedBlock(nn.Module):
    """Space attention within each frame, then time attention (frame-causal, cacheable) at each spatial
    position, then an MLP: attention cost T*S^2 + S*T^2 instead of (T*S)^2."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = _norm(width), _norm(width), _norm(width)
        self.space = Attention(width, heads)
        self.time = Attention(width, heads)
        self.mlp = Mlp(width, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 9 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor, ropes: dict, *, causal: bool, mask: torch.Tensor | None,
                cache: KVCache | None, layer: int, write: bool) -> torch.Tensor:
        B, T, S, D = x.shape
        s1, a1, g1, s2, a2, g2, s3, a3, g3 = self.ada(c)[:, :, None].chunk(9, dim=-1)  # each (B, T, 1, D)
        h = modulate(self.norm1(x), s1, a1).reshape(B * T, S, D)                       # (B*T, S, D)
        h, _ = self.space(h, ropes["space"])
        x = x + g1 * h.view(B, T, S, D)
        h = rearrange(modulate(self.norm2(x), s2, a2), "b t s d -> (b s) t d")           # (B*S, T, D)
        past = cache.layers[layer] if cache is not None and layer < len(cache.layers) else None
        h, (k, v) = self.time(h, ropes["time"], mask=mask, causal=causal and past is None, past=past)
        if write:
            cache.append(layer, k, v, time_dim=2)
        x = x + g2 * rearrange(h, "(b s) t d -> b t s d", b=B)
        return x + g3 * self.mlp(modulate(self.norm3(x), s3, a3))


class FullBlock(nn.Module):
    """One attention over all tokens of the clip (frame-causal: frame by frame over the keys so far), then an MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1, self.norm2 = _norm(width), _norm(width)
        self.attn = Attention(width, heads)
        self.mlp = Mlp(width, mlp_ratio)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(self, x: torch.Tensor, c: torch.Tensor, ropes: dict, *, causal: bool, mask: torch.Tensor | None,
                cache: KVCache | None, layer: int, write: bool) -> torch.Tensor:
        B, T, S, D = x.shape
        s1, a1, g1, s2, a2, g2 = self.ada(c)[:, :, None].chunk(6, dim=-1)              # each (B, T, 1, D)
        h = modulate(self.norm1(x), s1, a1).reshape(B, T * S, D)                       # (B, T*S, D)
        past = cache.layers[layer] if cache is not None and layer < len(cache.layers) else None
        h, (k, v) = self.attn(h, ropes["full"], block=S if causal else None, past=past)
        if write:
            cache.append(layer, k, v, time_dim=2)
        x = x + g1 * h.view(B, T, S, D)
        return x + g2 * self.mlp(modulate(self.norm2(x), s2, a2))


class FinalLayer(nn.Module):
    """adaLN (per frame) then a linear map back to patch values."""

    def __init__(self, width: int, patch_dim: int):
        super().__init__()
        self.norm = _norm(width)
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, patch_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.ada(c)[:, :, None].chunk(2, dim=-1)                        # (B, T, 1, D) each
        return self.linear(modulate(self.norm(x), shift, scale))                       # (B, T, S, P)

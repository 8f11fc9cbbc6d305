"""Multi-head self-attention with rotary positions and optional cached keys/values of earlier frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from worldsim.models.rope import apply_rope


class Attention(nn.Module):
    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], *, mask: torch.Tensor | None = None,
                causal: bool = False, block: int | None = None,
                past: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (G, L, D) -> (G, L, D) and this call's rotated (k, v) (G, heads, L, hd), for a cache.

        `past` (k, v) (G, heads, Lp, hd) are prepended to the keys. What each query sees: everything, or `mask`
        (L, Lp + L) bool (True = attend), or `causal` (lower-triangular over L, no past), or `block` = tokens per
        frame for frame-causal attention, computed frame by frame so the masked half is never computed."""
        q, k, v = rearrange(self.qkv(x), "g l (three h d) -> three g h l d", three=3, h=self.heads)  # (G, h, L, hd)
        cos, sin = rope
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        kk, vv = (k, v) if past is None else (torch.cat((past[0], k), 2), torch.cat((past[1], v), 2))
        if block:
            lp = kk.shape[2] - q.shape[2]
            o = torch.cat([F.scaled_dot_product_attention(q[:, :, i:i + block], kk[:, :, : lp + i + block],
                                                          vv[:, :, : lp + i + block])
                           for i in range(0, q.shape[2], block)], dim=2)                   # (G, h, L, hd)
        else:
            o = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask, is_causal=causal and mask is None)
        return self.proj(rearrange(o, "g h l d -> g l (h d)")), (k, v)                       # (G, L, D)

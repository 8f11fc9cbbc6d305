"""Analytic FLOP counts (a multiply-add = 2 FLOPs), read off the built model so they follow its architecture.

Forward FLOPs = 2 x (weights applied per token) x tokens + 2 x (weights applied per frame) x frames
              + 2 x (text encoder weights) x text tokens + attention,
attention per layer and clip = 4 x D x (query, key) pairs computed (QK^T and AV): frame-causal attention
computes only key frames <= the query frame, T'(T'+1)/2 frame pairs of S x S tokens instead of T'^2.
A training step (forward + backward) is 3x the forward: 6 x params x tokens + 3 x attention.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from worldsim.models.dit import VideoDiT


def _weights(*modules: nn.Module | None) -> int:
    return sum(m.weight.numel() for mod in modules if mod is not None for m in mod.modules()
               if isinstance(m, (nn.Linear,)))


@dataclass(frozen=True)
class Flops:
    per_token_params: int
    per_frame_params: int
    text_params: int
    matmul: float
    attention: float

    @property
    def forward(self) -> float:
        return self.matmul + self.attention

    @property
    def train(self) -> float:
        return 3.0 * self.forward


def count(model: VideoDiT, batch: int, size: tuple[int, int, int], text_len: int = 0) -> Flops:
    """FLOPs of one forward over `batch` clips of `size` (T, H, W); `text_len` caption tokens per clip."""
    cfg = model.cfg
    T, H, W = size
    pt, ph, pw = cfg.patch
    Tp, S = T // pt, (H // ph) * (W // pw)
    tokens, frames = batch * Tp * S, batch * T
    per_token = _weights(model.embed, model.final.linear) + sum(
        _weights(*(m for name, m in b.named_children() if name != "ada")) for b in model.blocks)
    per_frame = _weights(model.cond.noise, model.cond.actions, model.cond.camera, model.final.ada,
                         *(b.ada for b in model.blocks))
    text = _weights(model.cond.text) if text_len else 0
    matmul = 2.0 * (per_token * tokens + per_frame * frames + text * text_len * batch)
    D = cfg.width
    pairs = Tp * (Tp + 1) / 2 if cfg.causal else Tp * Tp  # (query frame, key frame) pairs computed
    if cfg.attention == "factorised":
        attn = 4.0 * D * (batch * Tp * S * S + batch * S * pairs)
    else:
        attn = 4.0 * D * batch * pairs * S * S
    return Flops(per_token, per_frame, text, matmul, attn * cfg.depth)


def per_frame(model: VideoDiT, size: tuple[int, int, int]) -> float:
    """Forward FLOPs per frame of one clip of `size` (the figure the presets table reports)."""
    return count(model, 1, size).forward / size[0]

"""Cached keys and values of past frames, for autoregressive rollout: a new frame attends to them instead of
recomputing the whole context (causal model only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class KVCache:
    """Per layer (keys, values) of the cached frames; `frames` counts the latent frames written so far (the
    time position of the next one), `grid` is the (H', W') token grid they were computed on.

    Layout per layer: factorised attention (B*S, heads, Tc, head_dim); full attention (B, heads, Tc*S, head_dim).
    """

    layers: list[tuple[torch.Tensor, torch.Tensor] | None] = field(default_factory=list)
    frames: int = 0
    cached: int = 0  # latent frames currently held (<= frames once trimmed)
    grid: tuple[int, int] | None = None
    history: torch.Tensor | None = None  # (B, h, C, H, W) the last inputs written, for `DiTConfig.history`

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor, time_dim: int) -> None:
        while len(self.layers) <= layer:
            self.layers.append(None)
        old = self.layers[layer]
        self.layers[layer] = (k, v) if old is None else (torch.cat((old[0], k), time_dim),
                                                         torch.cat((old[1], v), time_dim))

    def keep_last(self, n: int, tokens_per_frame: int, full: bool) -> None:
        """Drop all but the last `n` cached latent frames (a sliding context window)."""
        if self.cached <= n:
            return
        keep = n * tokens_per_frame if full else n
        self.layers = [None if kv is None else (kv[0][..., -keep:, :], kv[1][..., -keep:, :]) for kv in self.layers]
        self.cached = n

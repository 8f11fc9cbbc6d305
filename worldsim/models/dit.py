"""The video DiT: a clip (B, T, C, H, W), a noise level per frame and its conditioning in, a prediction of the
same shape out. It knows nothing of diffusion: the noise level is just one more per-frame condition.

Tokens are spacetime patches (`worldsim.kernels`); positions are rotary over token indices (relative, in every
attention) plus an absolute sin-cos (h, w) embedding (a token knows where it is in the frame); any duration,
resolution and aspect ratio divisible by the patch works. With `causal=True` frame t sees frames <= t only, and a
`KVCache` lets a rollout add one frame at a time without recomputing its context.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F

from worldsim import kernels
from worldsim.errors import ConfigError
from worldsim.models.blocks import FactorisedBlock, FinalLayer, FullBlock
from worldsim.models.cache import KVCache
from worldsim.models.conditioning import Cond, CondEmbedder
from worldsim.models.config import DiTConfig
from worldsim.models.rope import grid_positions, rope_tables, sincos_2d
from worldsim.models.warp import ActionWarp


class VideoDiT(nn.Module):
    def __init__(self, cfg: DiTConfig, name: str = "custom"):
        super().__init__()
        self.cfg = cfg
        self.name = name
        self.embed = nn.Linear(cfg.input_dim, cfg.width)
        # the next frames' pixels (bidirectional calls only); no bias, so a causal call is the same as zero input
        self.embed_future = nn.Linear(cfg.patch_dim * cfg.future, cfg.width, bias=False) if cfg.future else None
        self.cond = CondEmbedder(cfg)
        self.warp = ActionWarp(cfg.action_dim) if cfg.action_warp else None
        block = FactorisedBlock if cfg.attention == "factorised" else FullBlock
        self.blocks = nn.ModuleList(block(cfg.width, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.final = FinalLayer(cfg.width, cfg.patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        """DiT's: Xavier linears, then adaLN and output zeroed so every block starts as the identity."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for b in [*self.blocks, self.final]:
            nn.init.zeros_(b.ada[-1].weight)
            nn.init.zeros_(b.ada[-1].bias)
        nn.init.zeros_(self.final.linear.weight)
        nn.init.zeros_(self.final.linear.bias)
        if self.embed_future is not None:  # starts as the network without it (fine-tuning adds it to trained weights)
            nn.init.zeros_(self.embed_future.weight)
        if self.cond.facts is not None:  # starts as the network without it (fine-tuning adds it to trained weights)
            nn.init.zeros_(self.cond.facts[-1].weight)
            nn.init.zeros_(self.cond.facts[-1].bias)
        if self.cond.layout is not None:
            nn.init.zeros_(self.cond.layout.out[-1].weight)
            nn.init.zeros_(self.cond.layout.out[-1].bias)
        if self.warp is not None:  # starts with nothing moved: the warped frame is the previous one
            nn.init.zeros_(self.warp.shift.weight)

    # -- inputs -----------------------------------------------------------------------------------------------
    def _check(self, x: torch.Tensor, noise: torch.Tensor, cache: KVCache | None, causal: bool) -> None:
        src = f"VideoDiT({self.name})"
        kernels.check_video(x, self.cfg.patch, channels=self.cfg.channels, source=src)
        if not isinstance(noise, torch.Tensor) or noise.shape != x.shape[:2]:
            shape = tuple(noise.shape) if isinstance(noise, torch.Tensor) else type(noise).__name__
            raise ConfigError(f"expected one noise level per frame (B, T) = {tuple(x.shape[:2])}, got {shape}",
                              source=src, field="noise")
        if cache is not None and not causal:
            raise ConfigError("a KV cache needs a causal model (causal=True)", source=src, field="cache")
        grid = (x.shape[3] // self.cfg.patch[1], x.shape[4] // self.cfg.patch[2])
        if cache is not None and cache.grid not in (None, grid):
            raise ConfigError(f"cache holds a {cache.grid} token grid, x makes {grid}", source=src, field="cache")

    def _ropes(self, t_pos: torch.Tensor, h: int, w: int, device) -> dict:
        hd, base = self.cfg.head_dim, self.cfg.rope_base
        if self.cfg.attention == "factorised":
            return {"space": rope_tables(grid_positions(None, h, w, device), hd, base),
                    "time": rope_tables(grid_positions(t_pos, None, None, device), hd, base)}
        return {"full": rope_tables(grid_positions(t_pos, h, w, device), hd, base)}

    def _mask(self, T: int, past: int, device, causal: bool) -> torch.Tensor | None:
        """Factorised time attention's mask (True = attend) for T new latent frames after `past` cached ones, or
        None where none is needed (not causal; no past: SDPA's is_causal; one new frame sees all it is given).
        Full attention needs none: it runs frame by frame (`Attention(block=...)`)."""
        if self.cfg.attention == "full" or not causal or past == 0 or T == 1:
            return None
        q_frame = torch.arange(past, past + T, device=device)                          # (T,)
        k_frame = torch.arange(past + T, device=device)                                # (past + T,)
        return k_frame[None, :] <= q_frame[:, None]                                    # (T, past + T)

    # -- forward ----------------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, noise: torch.Tensor, cond: Cond | None = None, *,
                cache: KVCache | None = None, write_cache: bool = False, causal: bool | None = None) -> torch.Tensor:
        """x (B, T, C, H, W), noise (B, T) -> (B, T, C, H, W).

        `causal` overrides the config for this call: one network can be trained both frame-causal (for cached
        rollout) and bidirectional (for modes whose context lies after the frames to make: extend backward, loop,
        connect).

        With `cache`, x holds only new frames placed after the cached ones and `cond`'s per-frame fields cover the
        new frames only; `write_cache=True` appends the new frames' keys and values (call it once a frame is final).
        """
        cfg = self.cfg
        causal = cfg.causal if causal is None else causal
        self._check(x, noise, cache, causal)
        pt, ph, pw = cfg.patch
        B, T, C, H, W = x.shape
        Tp, Hp, Wp = T // pt, H // ph, W // pw
        S = Hp * Wp
        if write_cache and cache is None:
            raise ConfigError("write_cache needs a cache", source=f"VideoDiT({self.name})", field="cache")
        past = cache.cached if cache is not None else 0
        t0 = cache.frames if cache is not None else 0
        # the caption's layout goes on the clip's first frame only: none for frames after cached ones
        c, layout = self.cond.embed(noise, cond, (Hp, Wp) if t0 == 0 else None)        # (B, T, D), (B, S, D)
        h = self.embed(self._tokens(x, cache, write_cache, cond))                       # (B, N, D)
        if self.embed_future is not None and not causal:
            h = h + self.embed_future(kernels.patchify(self._next_frames(x), cfg.patch))
        h = h.view(B, Tp, S, cfg.width)                                                # (B, T', S, D)
        h = h + sincos_2d(Hp, Wp, cfg.width, x.device).to(h.dtype)                     # absolute (h, w) position
        if layout is not None:
            h = torch.cat((h[:, :1] + layout[:, None].to(h.dtype), h[:, 1:]), 1)          # (B, T', S, D)
        if pt > 1:
            c = c.view(B, Tp, pt, cfg.width).mean(2)                                   # (B, T', D)
        h = h + c[:, :, None]  # conditions in the residual stream too: MLPs can cross them with position
        ropes = self._ropes(torch.arange(t0, t0 + Tp, device=x.device), Hp, Wp, x.device)
        mask = self._mask(Tp, past, x.device, causal)
        for i, block in enumerate(self.blocks):
            h = block(h, c, ropes, causal=causal, mask=mask, cache=cache, layer=i, write=write_cache)
        if write_cache:
            cache.frames, cache.cached, cache.grid = t0 + Tp, past + Tp, (Hp, Wp)
        out = self.final(h, c).reshape(B, Tp * S, cfg.patch_dim)                       # (B, N, P)
        return kernels.unpatchify(out, cfg.patch, (T, H, W))                           # (B, T, C, H, W)

    def _tokens(self, x: torch.Tensor, cache: KVCache | None, write: bool, cond: Cond | None = None) -> torch.Tensor:
        """x (B, T, C, H, W) -> (B, N, input_dim): each token's patch, then its history (with any halo), then with
        `action_warp` the previous frame's patch moved by the action (not moved where actions are absent or nulled)."""
        a = self.cfg.history_halo
        B, T, C, H, W = x.shape
        stacked = self._stack_history(x, cache, write)                                 # (B, T, C(1+h), H, W)
        if not a:
            tokens = kernels.patchify(stacked, self.cfg.patch)                         # (B, N, C(1+h) ph pw)
        else:
            _, ph, pw = self.cfg.patch
            win = F.unfold(rearrange(stacked[:, :, C:], "b t c h w -> (b t) c h w"), (ph + 2 * a, pw + 2 * a),
                           padding=a, stride=(ph, pw))                                 # (B T, C h k k, Hp Wp)
            win = rearrange(win, "(b t) d s -> b (t s) d", b=B)                        # (B, N, C h k k)
            tokens = torch.cat((kernels.patchify(x, self.cfg.patch), win), -1)
        if self.warp is None:
            return tokens
        acts = None if cond is None or "actions" in cond.null else cond.actions
        moved = self.warp(stacked[:, :, C:2 * C], acts)                                # (B, T, C, H, W)
        return torch.cat((tokens, kernels.patchify(moved, self.cfg.patch)), -1)

    def _stack_history(self, x: torch.Tensor, cache: KVCache | None, write: bool) -> torch.Tensor:
        """x (B, T, C, H, W) -> (B, T, C * (1 + h), H, W): each frame with the h frames before it (the cache's last
        inputs before the first new frame; zeros before the clip's start), nearest first."""
        h = self.cfg.history
        if not h:
            return x
        B, T, C, H, W = x.shape
        past = cache.history if cache is not None and cache.history is not None else x.new_zeros(B, 0, C, H, W)
        if past.shape[0] != B or past.shape[2:] != x.shape[2:]:
            raise ConfigError(f"cache holds history of shape {tuple(past.shape)}, x is {tuple(x.shape)}",
                              source=f"VideoDiT({self.name})", field="cache")
        pad = x.new_zeros(B, max(0, h - past.shape[1]), C, H, W)
        seq = torch.cat((pad, past[:, -h:].to(x.dtype), x), 1)                          # (B, h + T, C, H, W)
        if write:
            cache.history = seq[:, -h:].detach()
        prev = [seq[:, h - j:h - j + T] for j in range(1, h + 1)]                      # h x (B, T, C, H, W)
        return torch.cat((x, *prev), 2)                                                # (B, T, C(1+h), H, W)

    def _next_frames(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, C, H, W) -> (B, T, C * f, H, W): each frame's f next frames (zeros after the clip), nearest first."""
        f = self.cfg.future
        seq = torch.cat((x, x.new_zeros(x.shape[0], f, *x.shape[2:])), 1)               # (B, T + f, C, H, W)
        return torch.cat([seq[:, j:j + x.shape[1]] for j in range(1, f + 1)], 2)

    def forward_list(self, videos: list[torch.Tensor], noise: list[torch.Tensor],
                     conds: list[Cond] | None = None) -> list[torch.Tensor]:
        """Clips of different sizes in one call: each (T_i, C, H_i, W_i) with noise (T_i,) and a batch-1 Cond.
        Clips of equal size run together as one dense batch (bucketing), results return in input order."""
        if len(noise) != len(videos) or (conds is not None and len(conds) != len(videos)):
            raise ConfigError("videos, noise and conds must have the same length", source=f"VideoDiT({self.name})",
                              field="noise")
        buckets: dict[tuple, list[int]] = defaultdict(list)
        for i, v in enumerate(videos):
            buckets[tuple(v.shape)].append(i)
        out: list[torch.Tensor | None] = [None] * len(videos)
        for idx in buckets.values():
            cond = Cond.cat([conds[i] for i in idx]) if conds is not None else None
            y = self(torch.stack([videos[i] for i in idx]), torch.stack([noise[i] for i in idx]), cond)
            for j, i in enumerate(idx):
                out[i] = y[j]
        return out

    def new_cache(self) -> KVCache:
        return KVCache()

    def trim_cache(self, cache: KVCache, frames: int) -> None:
        """Keep only the last `frames` frames of context (a sliding window for endless rollouts)."""
        if frames % self.cfg.patch[0]:
            raise ConfigError(f"window {frames} is not a multiple of pt={self.cfg.patch[0]}",
                              source=f"VideoDiT({self.name})", field="frames")
        S = cache.grid[0] * cache.grid[1] if cache.grid else 0
        cache.keep_last(frames // self.cfg.patch[0], S, self.cfg.attention == "full")

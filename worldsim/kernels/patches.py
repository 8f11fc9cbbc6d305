"""Spacetime patch ops, the public functions: checked inputs, then the torch reference or a CuPy kernel
(see `dispatch`). Videos of several sizes travel together as a `Packed` batch: their tokens concatenated."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from worldsim.errors import ConfigError
from worldsim.kernels import cuda, dispatch, reference

Patch = tuple[int, int, int]


def check_video(x: torch.Tensor, patch: Patch, *, channels: int | None = None, source: str = "video") -> None:
    """Raise a `ConfigError` naming the field unless `x` is (B, T, C, H, W) with T, H, W divisible by `patch`."""
    if not isinstance(x, torch.Tensor) or x.ndim != 5:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ConfigError(f"expected a video tensor (B, T, C, H, W), got {shape}", source=source, field="x")
    if len(patch) != 3 or any(int(p) < 1 for p in patch):
        raise ConfigError(f"patch must be three positive ints (pt, ph, pw), got {patch}", source=source, field="patch")
    _, T, C, H, W = x.shape
    if channels is not None and C != channels:
        raise ConfigError(f"x has {C} channels (dim 2 of B T C H W) but {channels} are expected",
                          source=source, field="x")
    bad = [f"{n}={s} by {p}" for n, s, p in zip("THW", (T, H, W), patch) if s % p or s == 0]
    if bad:
        raise ConfigError(f"video size (T, H, W)={T, H, W} is not divisible by the patch {tuple(patch)}: "
                          + ", ".join(bad), source=source, field="x")


def grid(size: tuple[int, int, int], patch: Patch) -> tuple[int, int, int]:
    """Token grid (T', H', W') of a video of `size` (T, H, W)."""
    return tuple(s // p for s, p in zip(size, patch))


def patchify(x: torch.Tensor, patch: Patch) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, N, C*pt*ph*pw) tokens ordered (t h w)."""
    check_video(x, patch, source="patchify")
    return cuda.patchify(x, patch) if dispatch.use_kernel("patchify", x) else reference.patchify(x, patch)


def unpatchify(tokens: torch.Tensor, patch: Patch, size: tuple[int, int, int]) -> torch.Tensor:
    """(B, N, D) tokens of a video of `size` (T, H, W) -> (B, T, C, H, W)."""
    T, H, W = size
    n = 1
    for s, p in zip(size, patch):
        if s % p:
            raise ConfigError(f"size {size} is not divisible by the patch {patch}", source="unpatchify", field="size")
        n *= s // p
    vol = patch[0] * patch[1] * patch[2]
    if tokens.ndim != 3 or tokens.shape[1] != n or tokens.shape[2] % vol:
        raise ConfigError(f"tokens {tuple(tokens.shape)} do not fit size {size} with patch {patch} "
                          f"(expected (B, {n}, C*{vol}))", source="unpatchify", field="tokens")
    if dispatch.use_kernel("unpatchify", tokens):
        return cuda.unpatchify(tokens, patch, (tokens.shape[0], T, tokens.shape[2] // vol, H, W))
    return reference.unpatchify(tokens, patch, size)


def patchify_uint8(x: torch.Tensor, patch: Patch, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, T, C, H, W) -> tokens in [-1, 1], normalisation fused with patchify on CUDA."""
    check_video(x, patch, source="patchify_uint8")
    if x.dtype != torch.uint8:
        raise ConfigError(f"expected uint8 pixels, got {x.dtype}", source="patchify_uint8", field="x")
    if dispatch.use_kernel("patchify_uint8", x):
        return cuda.patchify_uint8(x, patch, dtype)
    return reference.patchify_uint8(x, patch, dtype)


def patchify_uint8_noised(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, patch: Patch,
                          dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 clip + noise + per-frame sigma (B, T) -> (x0 tokens, x0 + sigma * noise tokens) in one pass on CUDA."""
    check_video(x, patch, source="patchify_uint8_noised")
    if x.dtype != torch.uint8 or noise.shape != x.shape or sigma.shape != x.shape[:2]:
        raise ConfigError(f"expected uint8 x, noise of x's shape and sigma (B, T); got {x.dtype}, "
                          f"{tuple(noise.shape)}, {tuple(sigma.shape)}", source="patchify_uint8_noised", field="x")
    if dispatch.use_kernel("patchify_uint8_noised", x):
        return cuda.patchify_uint8_noised(x, noise, sigma, patch, dtype)
    return reference.patchify_uint8_noised(x, noise, sigma, patch, dtype)


@dataclass(frozen=True)
class Packed:
    """Videos of different sizes as one token tensor: `tokens` (sum N_i, D) and each video's (T, H, W)."""

    tokens: torch.Tensor
    sizes: tuple[tuple[int, int, int], ...]
    patch: Patch

    @property
    def lengths(self) -> list[int]:
        return [g[0] * g[1] * g[2] for g in (grid(s, self.patch) for s in self.sizes)]

    def split(self) -> list[torch.Tensor]:
        """Per-video token tensors (N_i, D), views into `tokens`."""
        return list(self.tokens.split(self.lengths))


def pack(videos: list[torch.Tensor], patch: Patch) -> Packed:
    """Videos (T_i, C, H_i, W_i) of any divisible sizes -> one `Packed` token batch."""
    if not videos:
        raise ConfigError("no videos to pack", source="pack", field="videos")
    for i, v in enumerate(videos):
        if not isinstance(v, torch.Tensor) or v.ndim != 4:
            raise ConfigError(f"videos[{i}] must be (T, C, H, W)", source="pack", field=f"videos[{i}]")
        check_video(v[None], patch, channels=videos[0].shape[1], source=f"pack videos[{i}]")
    tokens = torch.cat([patchify(v[None], patch)[0] for v in videos])  # (sum N_i, D)
    return Packed(tokens, tuple((v.shape[0], v.shape[2], v.shape[3]) for v in videos), tuple(patch))


def unpack(packed: Packed) -> list[torch.Tensor]:
    """The inverse of `pack`: a list of (T_i, C, H_i, W_i) videos."""
    return [unpatchify(t[None], packed.patch, s)[0] for t, s in zip(packed.split(), packed.sizes)]

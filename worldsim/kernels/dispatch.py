"""Which implementation a patch op takes on a CUDA device: the CuPy kernel only where it measured faster than the
torch reference on that device (timed once per op and device, on first use), torch everywhere else.

`WORLDSIM_PATCH_KERNELS=torch|cupy|auto` (read at each call, default `auto`) forces a path, for tests and benches.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from worldsim.errors import ConfigError
from worldsim.kernels import cuda, reference

OPS = ("patchify", "unpatchify", "patchify_uint8", "patchify_uint8_noised")
_PROBE = (4, 16, 3, 64, 64)  # a training batch of 64 px clips
_PROBE_PATCH = (1, 4, 4)


@dataclass(frozen=True)
class Timing:
    op: str
    device: str
    torch_s: float
    kernel_s: float
    bytes_moved: int  # bytes the op must read and write at least

    @property
    def use_kernel(self) -> bool:
        return self.kernel_s < 0.95 * self.torch_s  # a clear win only, not noise

    def gbps(self, which: str) -> float:
        return self.bytes_moved / (self.kernel_s if which == "kernel" else self.torch_s) / 1e9


_TIMINGS: dict[tuple[str, str], Timing] = {}


def _probe_inputs(op: str, device: torch.device):
    g = torch.Generator(device="cpu").manual_seed(0)
    u8 = torch.randint(0, 256, _PROBE, dtype=torch.uint8, generator=g).to(device)
    if op == "patchify":
        x = reference.normalize_uint8(u8)
        return (x, _PROBE_PATCH), 2 * x.numel() * 4
    if op == "unpatchify":
        tok = reference.patchify(reference.normalize_uint8(u8), _PROBE_PATCH)
        return (tok, _PROBE_PATCH, (_PROBE[1], _PROBE[3], _PROBE[4])), 2 * tok.numel() * 4
    if op == "patchify_uint8":
        return (u8, _PROBE_PATCH, torch.float32), u8.numel() * 5
    noise = torch.randn(_PROBE, generator=g).to(device)
    sigma = torch.rand(_PROBE[:2], generator=g).to(device)
    return (u8, noise, sigma, _PROBE_PATCH, torch.float32), u8.numel() * 13


def _kernel_fn(op: str):
    if op == "unpatchify":
        return lambda tok, patch, size: cuda.unpatchify(tok, patch, (tok.shape[0], size[0], tok.shape[2] // (
            patch[0] * patch[1] * patch[2]), size[1], size[2]))
    return getattr(cuda, op)


def time_cuda(fn, args, iters: int = 20) -> float:
    """Median seconds per call of `fn(*args)` on the current CUDA stream (CUDA events, after a warm-up)."""
    for _ in range(3):
        fn(*args)
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(*args)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return sorted(times)[len(times) // 2]


def measure(op: str, device: torch.device) -> Timing:
    """Time the torch reference and the kernel for `op` on `device` (cached)."""
    key = (op, str(device))
    if key not in _TIMINGS:
        args, nbytes = _probe_inputs(op, device)
        _TIMINGS[key] = Timing(op, str(device), time_cuda(getattr(reference, op), args),
                               time_cuda(_kernel_fn(op), args), nbytes)
    return _TIMINGS[key]


def copy_bandwidth(device: torch.device, nbytes: int = 256 << 20) -> float:
    """The device's copy bandwidth in GB/s (read + write), the ceiling a patch op can reach."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    return 2 * nbytes / time_cuda(dst.copy_, (src,)) / 1e9


def use_kernel(op: str, t: torch.Tensor) -> bool:
    """True where `op` on tensor `t` should run the CuPy kernel."""
    if t.device.type != "cuda":
        return False  # CPU always takes the torch path
    mode = os.environ.get("WORLDSIM_PATCH_KERNELS", "auto")
    if mode not in ("auto", "torch", "cupy"):
        raise ConfigError(f"expected auto, torch or cupy, got {mode!r}", source="environment",
                          field="WORLDSIM_PATCH_KERNELS")
    if mode == "torch":
        return False
    if not cuda.available():
        if mode == "cupy":
            raise ConfigError("CuPy kernels were asked for but CuPy or a CUDA device is missing "
                              "(pip install 'worldsim[cuda]')", source="environment", field="WORLDSIM_PATCH_KERNELS")
        return False
    return mode == "cupy" or measure(op, t.device).use_kernel

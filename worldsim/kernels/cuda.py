"""CuPy launchers for the patch kernels: torch CUDA tensors in and out, shared with CuPy through DLPack (no copy),
launched on torch's current stream. Imported only when a CUDA tensor reaches a patch op and CuPy is installed."""

from __future__ import annotations

from functools import cache

import torch

from worldsim.kernels.cuda_source import SOURCE
from worldsim.kernels.reference import SCALE

_THREADS = 256


def available() -> bool:
    """CuPy importable and a CUDA device usable by both torch and CuPy."""
    if not torch.cuda.is_available():
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no driver or no device all mean "use torch"
        return False


@cache
def _module(device_index: int):
    import cupy

    with cupy.cuda.Device(device_index):
        return cupy.RawModule(code=SOURCE, options=("--std=c++14",))


def _kernel(name: str, device: torch.device):
    return _module(device.index if device.index is not None else torch.cuda.current_device()).get_function(name)


def _cp(t: torch.Tensor):
    import cupy

    return cupy.from_dlpack(t)  # zero-copy view of the torch tensor's memory


def _launch(name: str, device: torch.device, n_runs: int, args: tuple) -> None:
    import cupy

    blocks = max(1, min((n_runs + _THREADS - 1) // _THREADS, 65535 * 4))
    stream = cupy.cuda.ExternalStream(torch.cuda.current_stream(device).cuda_stream)
    with cupy.cuda.Device(device.index), stream:
        _kernel(name, device)((blocks,), (_THREADS,), args)


def _geo(x_shape: tuple, patch: tuple[int, int, int]) -> tuple:
    import numpy as np

    B, T, C, H, W = x_shape
    return tuple(np.int64(v) for v in (B, T, C, H, W)) + tuple(np.int32(p) for p in patch)


def _token_shape(x_shape: tuple, patch: tuple[int, int, int]) -> tuple[int, int, int]:
    B, T, C, H, W = x_shape
    pt, ph, pw = patch
    return B, (T // pt) * (H // ph) * (W // pw), C * pt * ph * pw


_AS_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32}  # copies move raw bits: any dtype of that width


def patchify(x: torch.Tensor, patch: tuple[int, int, int]) -> torch.Tensor:
    x = x.contiguous()
    out = torch.empty(_token_shape(x.shape, patch), dtype=x.dtype, device=x.device)
    size = x.element_size()
    _launch(f"patchify_copy_{size}", x.device, x.numel() // patch[2],
            (_cp(x.view(_AS_INT[size])), _cp(out.view(_AS_INT[size]))) + _geo(x.shape, patch))
    return out


def unpatchify(tokens: torch.Tensor, patch: tuple[int, int, int], x_shape: tuple) -> torch.Tensor:
    tokens = tokens.contiguous()
    x = torch.empty(x_shape, dtype=tokens.dtype, device=tokens.device)
    size = tokens.element_size()
    _launch(f"unpatchify_copy_{size}", tokens.device, x.numel() // patch[2],
            (_cp(tokens.view(_AS_INT[size])), _cp(x.view(_AS_INT[size]))) + _geo(x_shape, patch))
    return x


def _suffix(dtype: torch.dtype) -> str:
    return {torch.float32: "f32", torch.bfloat16: "bf16"}[dtype]


def _out_view(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int16) if t.dtype == torch.bfloat16 else t


def patchify_uint8(x: torch.Tensor, patch: tuple[int, int, int], dtype: torch.dtype) -> torch.Tensor:
    import numpy as np

    x = x.contiguous()
    out = torch.empty(_token_shape(x.shape, patch), dtype=dtype, device=x.device)
    _launch(f"patchify_u8_{_suffix(dtype)}", x.device, x.numel() // patch[2],
            (_cp(x), _cp(_out_view(out))) + _geo(x.shape, patch) + (np.float32(SCALE),))
    return out


def patchify_uint8_noised(x: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, patch: tuple[int, int, int],
                          dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np

    x = x.contiguous()
    noise = noise.to(torch.float32).contiguous()
    sigma = sigma.to(torch.float32).contiguous()
    x0 = torch.empty(_token_shape(x.shape, patch), dtype=dtype, device=x.device)
    xt = torch.empty_like(x0)
    _launch(f"patchify_u8_noised_{_suffix(dtype)}", x.device, x.numel() // patch[2],
            (_cp(x), _cp(noise), _cp(sigma), _cp(_out_view(x0)), _cp(_out_view(xt)))
            + _geo(x.shape, patch) + (np.float32(SCALE),))
    return x0, xt

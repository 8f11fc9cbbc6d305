"""Spacetime patch ops: a torch/einops reference (always used on CPU) and CuPy CUDA kernels behind the same
functions, chosen per op and device only where measured faster (`dispatch`)."""

from worldsim.kernels.patches import (
                                      Packed,
                                      check_video,
                                      grid,
                                      pack,
                                      patchify,
                                      patchify_uint8,
                                      patchify_uint8_noised,
                                      unpack,
                                      unpatchify,
)

__all__ = ["Packed", "check_video", "grid", "pack", "patchify", "patchify_uint8", "patchify_uint8_noised",
           "unpack", "unpatchify"]

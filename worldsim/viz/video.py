"""Writing frame stacks to mp4/gif, upscaled so that 32-64 px simulations are visible to a person."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np


def upscale(frames: np.ndarray, min_size: int = 256) -> np.ndarray:
    """Nearest-neighbour upscale (T, H, W, 3) so the short side is at least `min_size`, keeping pixels crisp."""
    t, h, w, c = frames.shape
    k = max(1, -(-min_size // min(h, w)))
    out = np.repeat(np.repeat(frames, k, axis=1), k, axis=2)
    # H.264 needs even sizes and most players want multiples of 16 for yuv420p
    return out[:, : out.shape[1] // 2 * 2, : out.shape[2] // 2 * 2]


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| of two uint8 frame stacks, as uint8: the third panel of every side-by-side comparison."""
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).astype(np.uint8)


def write_video(path: str | Path, frames: np.ndarray, fps: float, min_size: int = 256) -> Path:
    """Write (T, H, W, 3) uint8 frames to `.mp4` (H.264) or `.gif`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = upscale(np.asarray(frames, dtype=np.uint8), min_size)
    if path.suffix == ".gif":
        iio.imwrite(path, frames, duration=1000.0 / fps, loop=0)
    else:
        _mp4(path, frames, fps)
    return path


def _mp4(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio_ffmpeg

    writer = imageio_ffmpeg.write_frames(str(path), frames.shape[2:0:-1], fps=fps, codec="libx264",
                                         pix_fmt_out="yuv420p", macro_block_size=2, quality=8)
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()

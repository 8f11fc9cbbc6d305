"""What the rollout, plan and generate commands write: a video (mp4 or gif, upscaled for people) and the raw frames
(.npz, uint8 `B T H W C`, with whatever arrays belong beside them), and how they read clips and images back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldsim.errors import ConfigError


def write_outputs(out: Path, name: str, frames: np.ndarray, fps: float, fmt: str = "mp4", **arrays) -> list[Path]:
    """frames (B, T, H, W, 3) -> OUT/NAME.npz (frames and `arrays`) and OUT/NAME.{mp4,gif}, the clips of the batch
    side by side."""
    from worldsim.viz.video import write_video

    if fmt not in ("mp4", "gif"):
        raise ConfigError(f"expected mp4 or gif, got {fmt!r}", field="--format")
    out.mkdir(parents=True, exist_ok=True)
    f = np.asarray(frames, np.uint8)
    npz = out / f"{name}.npz"
    np.savez_compressed(npz, frames=f, **{k: np.asarray(v) for k, v in arrays.items()})
    strip = np.concatenate(list(f), axis=2)                                                # (T, H, B * W, 3)
    video = write_video(out / f"{name}.{fmt}", strip, fps)
    return [npz, video]


def read_clip(path: str | Path, field: str) -> np.ndarray:
    """uint8 frames from an .npz (array `frames`, (T, H, W, 3) or (B, T, H, W, 3)) or an image file (one frame)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("file not found", source=p, field=field)
    if p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            if "frames" not in z:
                raise ConfigError(f"no array 'frames' (has {list(z.keys())})", source=p, field=field)
            return z["frames"]
    import imageio.v3 as iio

    try:
        img = iio.imread(p)
    except Exception as e:  # imageio raises many types for unreadable files
        raise ConfigError(f"cannot read as an image: {e}", source=p, field=field) from None
    return np.asarray(img)[..., :3][None]

"""The colour parser of Kang et al. (2024, "How Far is Video Generation from World Model"): each object's centre is
the mean (u, v) of the pixels whose colour lies within a fixed distance of the object's spec colour; velocities are
finite differences of centres. Run on MuJoCo's own frames it gives the floor that a perfect video would reach.

Fixed constants (chosen on MuJoCo data alone, before any model was scored; see docs/metrics.md):
- `PARSE_DISTANCE` = 40 (Euclidean, 0-255 RGB) = half of the minimum distance (80) that scene validation enforces
  between any object colour and any scenery or background colour, so a pixel can match at most one object and
  never the scenery, while a generated colour may drift by up to 40 levels and still count.
- `FULLY_VISIBLE` = 0.999: an object-frame is trusted only when MuJoCo's visible fraction reaches it (a partly
  hidden object's pixel mean is not its centre) and MuJoCo's mask of it does not touch the image border (partly out
  of view). Kang et al. exclude frames with a ball partly out of view; we exclude per object and frame.

Frames are `(..., H, W, 3)` uint8 (`B T H W C` in this package); centres are `(..., K, 2)` float (u, v) in pixels,
NaN where an object has no matching pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldsim.sim.spec import MIN_COLOUR_DISTANCE

PARSE_DISTANCE = MIN_COLOUR_DISTANCE / 2
FULLY_VISIBLE = 0.999


def colour_masks(frames: np.ndarray, colours: np.ndarray, distance: float = PARSE_DISTANCE) -> np.ndarray:
    """(..., H, W, 3) uint8 frames and (K, 3) colours -> (..., K, H, W) bool: pixels within `distance` of each colour."""
    f = np.asarray(frames).astype(np.int32)
    cols = np.asarray(colours, dtype=np.int32).reshape(-1, 3)
    out = np.empty((*f.shape[:-3], len(cols), *f.shape[-3:-1]), dtype=bool)
    for k, c in enumerate(cols):  # one object at a time keeps memory at one frame stack
        out[..., k, :, :] = ((f - c) ** 2).sum(-1) <= distance**2
    return out


@dataclass
class Parsed:
    """The parser's reading of a frame stack."""

    centre: np.ndarray  # (..., K, 2) mean (u, v) of matching pixels, px; NaN where no pixel matches
    pixels: np.ndarray  # (..., K) matching pixel count
    border: np.ndarray  # (..., K) whether the object's pixels touch the image border (partly out of view)


def parse(frames: np.ndarray, colours: np.ndarray, distance: float = PARSE_DISTANCE) -> Parsed:
    """Find each object by colour in every frame (Kang et al.'s parser)."""
    masks = colour_masks(frames, colours, distance)  # (..., K, H, W)
    h, w = masks.shape[-2:]
    rows = masks.sum(-1)  # (..., K, H) pixels per row
    cols = masks.sum(-2)  # (..., K, W) pixels per column
    n = rows.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        u = cols @ (np.arange(w) + 0.5) / n
        v = rows @ (np.arange(h) + 0.5) / n
    centre = np.stack([u, v], -1)
    centre[n == 0] = np.nan
    border = (rows[..., 0] + rows[..., -1] + cols[..., 0] + cols[..., -1]) > 0
    return Parsed(centre, n, border)


def trusted(visible: np.ndarray, border: np.ndarray, active: np.ndarray) -> np.ndarray:
    """(..., K) bool: object-frames whose centre can be measured (fully visible, inside the image, taking part).

    `visible` and `active` come from MuJoCo (`info['object_visible']`, `info['object_active']`) and `border` from
    parsing MuJoCo's frame: the exclusion depends on the truth only, never on the model's frames."""
    return (np.asarray(visible) >= FULLY_VISIBLE) & ~np.asarray(border, bool) & np.asarray(active, bool)


def velocity(centres: np.ndarray, axis: int = -3) -> np.ndarray:
    """Forward finite differences along time: v[t] = c[t + 1] - c[t] (px/frame, or m/frame for world positions)."""
    return np.diff(centres, axis=axis)


def backproject(uv: np.ndarray, k: np.ndarray, world_to_cam: np.ndarray, plane_point: np.ndarray,
                plane_normal: np.ndarray) -> np.ndarray:
    """Pixel (..., 2) -> world point (..., 3) where the camera ray through it meets a plane.

    Scene units come "through the camera": a parsed centre is lifted to the plane through the object's true position
    that is parallel to the scene's motion plane (objects move in that plane), so pixel errors become metres.
    `k` (..., 3, 3) and `world_to_cam` (..., 4, 4) broadcast against `uv`; `plane_point` (..., 3); `plane_normal` (3,)."""
    uv = np.asarray(uv, dtype=np.float64)
    ray_cam = np.concatenate([(uv - k[..., :2, 2]) / np.stack([k[..., 0, 0], k[..., 1, 1]], -1),
                              np.ones(uv.shape[:-1] + (1,))], -1)  # (..., 3) direction in camera frame, z = 1
    r = world_to_cam[..., :3, :3]
    t = world_to_cam[..., :3, 3]
    origin = -np.einsum("...ji,...j->...i", r, t)  # camera centre in world: -R^T t
    direction = np.einsum("...ji,...j->...i", r, ray_cam)  # R^T d
    n = np.asarray(plane_normal, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = ((np.asarray(plane_point) - origin) @ n) / (direction @ n)
    return origin + s[..., None] * direction

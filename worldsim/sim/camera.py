"""Pinhole cameras in the OpenCV convention, read off MuJoCo.

Pixel convention: pixel (row i, column j) covers [j, j+1) x [i, i+1) in image coordinates (u, v), so its centre is
(j + 0.5, i + 0.5). Row 0 is the top of the image. Intrinsics K map camera coordinates (x right, y down, z forward)
to (u, v); extrinsics are the 4x4 world-to-camera transform in that same camera frame.
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

# MuJoCo cameras look along -z with y up; OpenCV cameras look along +z with y down.
_MJ_TO_CV = np.diag([1.0, -1.0, -1.0])


def intrinsics(model: mujoco.MjModel, cam_id: int, height: int, width: int) -> np.ndarray:
    """3x3 K for a MuJoCo camera rendered at height x width (fovy is vertical; pixels are square)."""
    f = 0.5 * height / math.tan(math.radians(float(model.cam_fovy[cam_id])) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def extrinsics(data: mujoco.MjData, cam_id: int) -> np.ndarray:
    """4x4 world-to-camera transform (OpenCV axes) of a camera at its current pose."""
    rot = data.cam_xmat[cam_id].reshape(3, 3)  # columns: camera axes in world coordinates
    r_cv = _MJ_TO_CV @ rot.T
    out = np.eye(4)
    out[:3, :3] = r_cv
    out[:3, 3] = -r_cv @ data.cam_xpos[cam_id]
    return out


def project(points: np.ndarray, k: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """Project world points (..., 3) to pixel coordinates (..., 2); points behind the camera give NaN."""
    p = points @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]  # (..., 3) camera frame
    z = p[..., 2:3]
    uv = (p[..., :2] / np.where(z > 0, z, np.nan)) * np.diag(k)[:2] + k[:2, 2]
    return uv

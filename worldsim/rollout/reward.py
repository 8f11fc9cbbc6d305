"""The scene's reward on generated frames: object positions are *read from the pixels* and passed to the same
reward definition `SceneEnv` uses, so a world model is scored on what it drew, never on a hidden state.

Choice (issue 7): parse, not a learned head. Frames are flat-lit, objects render exactly their spec colour and
colours are validated >= 80 apart (docs/decisions.md), so the evaluation's colour parser (`worldsim.eval.parse`,
Kang et al. 2024) finds each object's pixel centre; the camera ray through it is intersected with the plane parallel
to the scene's motion plane through the object's resting position (`eval.parse.backproject`), which gives world
metres for fixed cameras. A head would need training data and could disagree with the frames it rewards.

Reward (the scene's, `SceneEnv._frame_events`): minus the distance, in the motion plane, from the reward object to
the goal site; `success` within `success_radius`. Scenes without a reward give 0. SceneEnv never terminates
(`terminated` is always False; episodes are truncated at `max_frames`), and neither does the world model.
An object not found in a frame keeps its last read position (`found` says so).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from worldsim.eval.parse import backproject, parse
from worldsim.sim import camera as cam
from worldsim.sim.registry import get_scene
from worldsim.sim.spec import MOTION_PLANES

MIN_PIXELS = 1  # any matching pixel: at 32 px the push pusher covers about one pixel (colours are >= 80 apart)


@dataclass
class Reading:
    """Object positions read from B frames."""

    pos: np.ndarray  # (B, K, 3) world position, m (the last read value where not found)
    uv: np.ndarray  # (B, K, 2) pixel centre, NaN where not found
    found: np.ndarray  # (B, K) bool


class SceneReader:
    """Reads object positions from frames of one scene, camera and resolution, and scores them with the scene's
    reward. `goal` (3,) is the episode's goal site (None: the reward cannot be computed)."""

    def __init__(self, scene: str, resolution: tuple[int, int], camera: str):
        sc = get_scene(scene)
        self.spec = sc.spec
        self.colours = np.array([o.colour for o in sc.spec.objects], np.float64)
        model = sc.model
        data = mujoco.MjData(model)
        mujoco.mj_forward(model, data)
        cid = sc.camera_ids[camera]
        self.k = cam.intrinsics(model, cid, *resolution)
        self.world_to_cam = cam.extrinsics(data, cid)
        self.rest = np.stack([data.xpos[ids.body] for ids in sc.objects])                # (K, 3) resting positions
        a, b = MOTION_PLANES[self.spec.motion_plane]
        self.plane = [a, b]
        self.normal = np.zeros(3)
        self.normal[3 - a - b] = 1.0
        self.goal_rest = None if sc.goal_site is None else data.site_xpos[sc.goal_site].copy()
        names = [o.name for o in self.spec.objects]
        self.reward_object = None if self.spec.reward is None else names.index(self.spec.reward.object)

    def goal(self, params: dict | None) -> np.ndarray | None:
        """The goal site of an episode with these quantities (its model position is its world position)."""
        if self.goal_rest is None or params is None:
            return None
        g = self.goal_rest.copy()
        for name, q in self.spec.quantities.items():
            if q.kind in ("goal_x", "goal_y") and name in params:
                g[0 if q.kind == "goal_x" else 1] = float(params[name])
        return g

    def read(self, frames: np.ndarray, previous: np.ndarray | None = None,
             plane_points: np.ndarray | None = None) -> Reading:
        """frames (B, H, W, 3) uint8 -> positions; `plane_points` (B, K, 3) fix each object's plane (default: its
        resting position), `previous` (B, K, 3) fills objects not found."""
        p = parse(frames, self.colours)
        found = p.pixels >= MIN_PIXELS                                                    # (B, K)
        pts = np.broadcast_to(self.rest, (len(frames), *self.rest.shape)) if plane_points is None else plane_points
        pos = backproject(np.nan_to_num(p.centre), self.k, self.world_to_cam, pts, self.normal)   # (B, K, 3)
        fallback = pts if previous is None else previous
        pos = np.where(found[..., None], pos, fallback)
        return Reading(pos, np.where(found[..., None], p.centre, np.nan), found)

    def reward(self, pos: np.ndarray, goal: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reward (B,), goal_distance (B,), success (B,)) from positions (B, K, 3); zeros without a reward/goal."""
        B = len(pos)
        if self.reward_object is None or goal is None:
            return np.zeros(B), np.zeros(B), np.zeros(B, bool)
        d = np.linalg.norm((pos[:, self.reward_object] - goal)[:, self.plane], axis=-1)
        return -d, d, d <= self.spec.reward.success_radius

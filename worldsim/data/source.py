"""What the recorder records from: a worldsim scene (`SceneEnv`) or any gymnasium MuJoCo env, seen through one
interface that yields a record (frame, state, camera, ...) per frame.

Both are made with `worldsim.make`, whose `info` holds everything: a worldsim scene's (worldsim/sim/scene_env.py)
and a gymnasium MuJoCo env's through `GymSceneAdapter` (worldsim/sim/gym_adapter.py: qpos/qvel from
`env.unwrapped.data`, the camera MuJoCo's renderer just drew). Gymnasium envs have no tracked objects: the object
arrays are absent from their stores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from worldsim.errors import ConfigError


@dataclass(frozen=True)
class SourceInfo:
    """What a store records about its env (root attributes and array shapes)."""

    scene: str
    source: str  # "scene" or "gymnasium"
    resolution: tuple[int, int]
    fps: float
    frame_skip: int
    timestep: float
    cameras: tuple[str, ...]
    objects: tuple[str, ...]
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    nq: int
    nv: int
    nu: int
    rewards: bool


class Source:
    """One env, reset per episode and stepped frame by frame; every frame becomes a record (a dict keyed like
    the store's arrays)."""

    def __init__(self, scene: str, resolution: tuple[int, int], frame_skip: int | None, camera: str | None):
        from worldsim.sim.registry import make, scene_names  # the env (and its GL context) is made here, in the worker

        self.name = scene
        h, w = resolution
        if scene in scene_names():
            self.env = make(scene, resolution=(h, w), frame_skip=frame_skip, camera=camera)
            self.kind = "scene"
            self.scene = self.env.scene
        else:
            kwargs = {} if frame_skip is None else {"frame_skip": frame_skip}
            if camera is not None:
                kwargs["camera_name"] = camera
            try:
                self.env = make(scene, resolution=(h, w), **kwargs)  # GymSceneAdapter (worldsim/sim/gym_adapter.py)
            except TypeError as e:
                raise ConfigError(f"{scene} does not take these settings: {e}", field="scene") from None
            self.kind = "gymnasium"
            self.scene = None
            if not getattr(self.env, "mujoco", False):
                raise ConfigError(f"{scene} is not a MuJoCo env: it has no qpos/qvel to record", field="scene")
        self.unwrapped = self.env.unwrapped
        self.info = self._describe(scene, (h, w), camera)
        self._camera_index = {c: i for i, c in enumerate(self.info.cameras)}

    def _describe(self, scene: str, resolution: tuple[int, int], camera: str | None) -> SourceInfo:
        u = self.unwrapped
        space = self.env.action_space
        if self.kind == "scene":
            spec = u.scene.spec
            return SourceInfo(scene, "scene", resolution, float(u.metadata["render_fps"]), int(u.frame_skip),
                              float(u.model.opt.timestep), tuple(spec.cameras), tuple(o.name for o in spec.objects),
                              tuple(map(float, space.low)), tuple(map(float, space.high)),
                              u.model.nq, u.model.nv, u.model.nu, spec.reward is not None)
        return SourceInfo(scene, "gymnasium", resolution, 1.0 / float(u.dt), int(u.frame_skip), float(u.model.opt.timestep),
                          (camera or "free",), (), tuple(map(float, space.low)), tuple(map(float, space.high)),
                          u.model.nq, u.model.nv, u.model.nu, True)

    # --- per episode ------------------------------------------------------------------------------------------

    def reset(self, seed: int, options: dict) -> dict:
        obs, info = self.env.reset(seed=seed, options=options or None)
        return self._record(obs, info, 0.0, False)

    def step(self, action: np.ndarray) -> dict:
        obs, reward, terminated, _truncated, info = self.env.step(action)
        # truncation is ignored: the recorder decides the episode length (frames_per_episode)
        return self._record(obs, info, float(reward), bool(terminated))

    def close(self) -> None:
        self.env.close()

    def _record(self, obs, info, reward, terminated) -> dict:
        rec = {
            "frames": obs, "qpos": info["qpos"], "qvel": info["qvel"], "ctrl": info["ctrl"], "time": info["time"],
            "camera": self._camera(info["camera"]), "intrinsics": info["intrinsics"], "extrinsics": info["extrinsics"],
            "rewards": reward, "terminations": terminated, "params": info.get("params", {}),
            # captions come from the env when it has them (issue 3); '' and [] otherwise
            "caption": str(info.get("caption", "")), "caption_events": info.get("caption_events", []),
            "events": list(info.get("events", [])),
        }
        if self.info.objects:
            for key in ("object_pos", "object_vel", "object_centroid", "object_visible", "object_active"):
                rec[key] = info[key]
        return rec

    def _camera(self, name: str) -> int:
        if name not in self._camera_index:
            raise ConfigError(f"the env rendered camera {name!r}, not one of {list(self.info.cameras)}", field="camera")
        return self._camera_index[name]


def params_json(params: dict) -> str:
    """Scene quantities as canonical JSON (sorted keys), so equal episodes store equal strings."""
    return json.dumps(params, sort_keys=True, default=float)

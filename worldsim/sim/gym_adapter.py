"""Any gymnasium env that renders `rgb_array` (e.g. `Reacher-v5`, `Pusher-v5`), usable wherever a worldsim scene is.

`worldsim.make("Reacher-v5", resolution=(48, 80))` returns a `GymSceneAdapter`: like `SceneEnv`, its observation
is the rendered frame and its `info` carries the keys that make sense for it:

| key               | when                | meaning                                                              |
|-------------------|---------------------|----------------------------------------------------------------------|
| qpos, qvel, ctrl  | MuJoCo envs         | `env.unwrapped.data`: enough to restore the state (`set_state`)      |
| camera            | always              | the MuJoCo camera name, `free` for MuJoCo's free camera, "" otherwise |
| intrinsics, extrinsics | MuJoCo envs    | of the camera that rendered the frame (from MuJoCo's scene camera), as in camera.py |
| params            | always              | `{}`: a gymnasium env draws its own initial state                    |
| frame, time       | always              | frame index; simulated time (MuJoCo envs) or frame index x dt        |
| events            | always              | `[]` (and a `shot` event at frame 0): no object events without objects |
| env_info          | always              | the wrapped env's own `info`                                         |

The object keys (`object_pos`, `object_visible`, ...) are absent: a gymnasium env has no declared objects.
MuJoCo envs render at the requested size natively (their `width`/`height` arguments) with shadows off (40x faster
on a software renderer, as in worldsim scenes); other envs' frames are resized by nearest-neighbour sampling.
"""

from __future__ import annotations

import gymnasium
import mujoco
import numpy as np

from worldsim.errors import SceneError
from worldsim.sim.camera import _MJ_TO_CV


def _resize_nearest(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    rows = (np.arange(height) * frame.shape[0] // height)
    cols = (np.arange(width) * frame.shape[1] // width)
    return frame[rows][:, cols]


class GymSceneAdapter(gymnasium.Wrapper):
    """A gymnasium env (made with `render_mode="rgb_array"`) whose observation is its rendered frame."""

    def __init__(self, env_id: str, *, resolution: int | tuple[int, int] = 64, shadows: bool = False, **kwargs):
        h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
        if not (isinstance(h, int) and isinstance(w, int) and 8 <= h <= 4096 and 8 <= w <= 4096):
            raise SceneError(f"resolution must be an int or (height, width) of ints in 8..4096, got {resolution!r}",
                             field="resolution")
        try:  # MuJoCo envs render at any size natively
            env = gymnasium.make(env_id, render_mode="rgb_array", width=w, height=h, **kwargs)
        except TypeError:
            env = gymnasium.make(env_id, render_mode="rgb_array", **kwargs)
        super().__init__(env)
        self.height, self.width = h, w
        self.mujoco = hasattr(env.unwrapped, "data") and isinstance(env.unwrapped.data, mujoco.MjData)
        if self.mujoco and not shadows:
            model = env.unwrapped.model
            model.light_castshadow[:] = 0
            model.vis.quality.offsamples = 0
        self.observation_space = gymnasium.spaces.Box(0, 255, (h, w, 3), np.uint8)
        self._frame_index = 0
        self._last: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        _, env_info = self.env.reset(seed=seed, options=options)
        self._frame_index = 0
        return self._observe(env_info)

    def step(self, action):
        _, reward, terminated, truncated, env_info = self.env.step(action)
        self._frame_index += 1
        frame, info = self._observe(env_info)
        return frame, reward, terminated, truncated, info

    def render(self):
        return None if self._last is None else self._last.copy()

    @property
    def spec(self):
        """The wrapped env's registration: the adapter is built by `worldsim.make`, not by a gymnasium spec."""
        return self.env.spec

    # --- state ---------------------------------------------------------------------------------------------

    def get_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(qpos, qvel) of a MuJoCo env."""
        d = self._data()
        return d.qpos.copy(), d.qvel.copy()

    def set_state(self, qpos, qvel):
        """Restore a MuJoCo env's state (e.g. from a recorded `info`); returns the frame and info it renders."""
        self._data()
        self.env.unwrapped.set_state(np.asarray(qpos, np.float64), np.asarray(qvel, np.float64))
        return self._observe({})

    def _data(self) -> mujoco.MjData:
        if not self.mujoco:
            raise SceneError(f"{self.env.spec.id if self.env.spec else self.env} is not a MuJoCo env: no qpos/qvel",
                             field="state")
        return self.env.unwrapped.data

    # --- internals -----------------------------------------------------------------------------------------

    def _observe(self, env_info: dict):
        frame = np.asarray(self.env.render(), dtype=np.uint8)
        if frame.shape[:2] != (self.height, self.width):
            frame = _resize_nearest(frame, self.height, self.width)
        frame = np.ascontiguousarray(frame[..., :3])
        self._last = frame
        f = self._frame_index
        info: dict = {"params": {}, "frame": f, "env_info": dict(env_info)}
        if self.mujoco:
            d = self.env.unwrapped.data
            info.update({"qpos": d.qpos.copy(), "qvel": d.qvel.copy(), "ctrl": d.ctrl.copy(), "time": float(d.time)})
            info.update(self._camera())
        else:
            info.update({"camera": "", "time": f * float(getattr(self.env.unwrapped, "dt", 1.0))})
        info["events"] = [{"frame": 0, "type": "shot", "camera": info["camera"]}] if f == 0 else []
        return frame, info

    def _camera(self) -> dict:
        """Intrinsics and extrinsics of the camera of the last render, read from MuJoCo's scene camera (valid for
        a fixed camera and for the free camera gymnasium's MuJoCo envs default to)."""
        renderer = self.env.unwrapped.mujoco_renderer
        viewer = renderer._get_viewer(render_mode="rgb_array")  # the viewer that rendered the frame
        cam_id = renderer.camera_id if renderer.camera_id is not None else -1
        name = "free" if cam_id == -1 else mujoco.mj_id2name(self.env.unwrapped.model, mujoco.mjtObj.mjOBJ_CAMERA, cam_id)
        # MuJoCo's scene holds two eye cameras, offset by +-ipd/2 sideways; a mono render uses their average.
        eyes = viewer.scn.camera
        pos = (np.array(eyes[0].pos) + np.array(eyes[1].pos)) / 2
        gl = eyes[0]
        forward, up = np.array(gl.forward), np.array(gl.up)
        right = np.cross(forward, up)
        rot = np.stack([right, up, -forward], axis=1)  # columns: MuJoCo camera axes in world coordinates
        r_cv = _MJ_TO_CV @ rot.T
        ext = np.eye(4)
        ext[:3, :3] = r_cv
        ext[:3, 3] = -r_cv @ pos
        fy = self.height * gl.frustum_near / (gl.frustum_top - gl.frustum_bottom)
        k = np.array([[fy, 0.0, self.width / 2], [0.0, fy, self.height * gl.frustum_top / (gl.frustum_top - gl.frustum_bottom)],
                      [0.0, 0.0, 1.0]])
        return {"camera": name, "intrinsics": k, "extrinsics": ext}


def make_gym(env_id: str, **kwargs) -> GymSceneAdapter:
    """A gymnasium env id as a worldsim env (see the module docstring)."""
    return GymSceneAdapter(env_id, **kwargs)

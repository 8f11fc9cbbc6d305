"""`SceneEnv`: a worldsim scene as a gymnasium env whose observation is the rendered frame.

| space        | shape             | dtype | meaning                                                                 |
|--------------|-------------------|-------|-------------------------------------------------------------------------|
| observation  | (H, W, 3)         | uint8 | the frame from the current camera                                       |
| action       | (nu,)             | f32   | MJCF actuator controls within ctrlrange; (0,) for scenes without actions |

Each built-in scene's action dimensions and units (push: pusher velocity, m/s; orbit: camera azimuth and
elevation rates, rad/s) are tabulated in docs/scenes.md, "The built-in library".

`info` at every reset and step (K = the spec's objects). Arrays hold no NaN, so seeded episodes compare equal:
an inactive object's entries are 0, and a centroid is meaningful only where `object_visible > 0` (0 elsewhere).

| key               | shape   | units / meaning                                                        |
|-------------------|---------|------------------------------------------------------------------------|
| qpos, qvel, ctrl  | (nq,), (nv,), (nu,) | MuJoCo state, enough to re-render the frame                |
| object_pos        | (K, 3)  | world position, m                                                      |
| object_vel        | (K, 3)  | world linear velocity, m/s                                             |
| object_centroid   | (K, 2)  | mean (u, v) of visible pixels, px (pixel centres at +0.5; see camera.py)|
| object_visible    | (K,)    | visible pixels / pixels it would cover unoccluded, in [0, 1]           |
| object_active     | (K,)    | whether the object takes part in this episode                          |
| camera            | str     | name of the camera of this frame                                       |
| intrinsics        | (3, 3)  | K in pixels                                                            |
| extrinsics        | (4, 4)  | world-to-camera (OpenCV axes)                                          |
| params            | dict    | the episode's scene quantities                                         |
| frame, time       | int, s  | frame index and simulated time                                         |
| events            | list    | this frame's events (dicts with `frame`, `type`, ...; see events.py)   |
| caption           | str     | the detailed caption of frames 0..frame (captions.py)                  |
| goal_distance     | m       | scenes with a `reward`: reward object to goal site, in the motion plane |
| success           | bool    | scenes with a `reward`: goal_distance <= success_radius                |
| violation         | str     | scenes with an `occluder`: the variant (`none`: the possible twin)     |
| violation_frame   | int     | scenes with an `occluder`: the violation frame, -1 until reached       |

Reset options (all optional): `distribution` (`id`, `ood`, `ood:NAME`), `params` (an episode's quantities, exactly),
`shots` (a multi-shot schedule, see shots.py: `[[frame, camera], ...]` or `"random"`), `violation` (scenes with an
occluder: `none`, `vanish`, `teleport`, `recolour`, see violation.py).
"""

from __future__ import annotations

import copy

import gymnasium
import mujoco
import numpy as np

from worldsim.errors import ActionError, SceneError
from worldsim.sim import camera as cam
from worldsim.sim import captions, shots
from worldsim.sim.events import CONTACT_SAMPLE_SECONDS, ContactEvents, VisibilityEvents
from worldsim.sim.registry import get_scene
from worldsim.sim.render import FrameRenderer
from worldsim.sim.scene import Scene
from worldsim.sim.spec import MOTION_PLANES
from worldsim.sim.violation import Violation


def _resolution(resolution: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    h, w = (resolution, resolution) if isinstance(resolution, int) else tuple(resolution)
    if not (isinstance(h, int) and isinstance(w, int) and 8 <= h <= 4096 and 8 <= w <= 4096):
        raise SceneError(f"resolution must be an int or (height, width) of ints in 8..4096, got {resolution!r}",
                         field="resolution")
    return h, w


class SceneEnv(gymnasium.Env):
    """A worldsim scene (MJCF + spec) as a gymnasium env rendering `rgb_array` frames."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, scene: str | Scene = "bounce", *, resolution: int | tuple[int, int] = 64,
                 frame_skip: int | None = None, camera: str | None = None, distribution: str = "id",
                 visibility: bool = True, render_mode: str | None = "rgb_array"):
        self.scene = get_scene(scene) if isinstance(scene, str) else scene
        spec = self.scene.spec
        if render_mode not in (None, "rgb_array"):
            raise SceneError(f"render_mode must be 'rgb_array', got {render_mode!r}", field="render_mode")
        if frame_skip is not None and not (isinstance(frame_skip, int) and frame_skip > 0):
            raise SceneError(f"frame_skip must be a positive integer, got {frame_skip!r}", field="frame_skip")
        self.render_mode = "rgb_array"
        self.height, self.width = _resolution(resolution)
        self.frame_skip = frame_skip or spec.frame_skip
        self.camera = camera or spec.cameras[0]
        if self.camera not in self.scene.camera_ids:
            raise SceneError(f"unknown camera {self.camera!r}; {spec.name} has {list(spec.cameras)}",
                             source=spec.source, field="camera")
        self.distribution = distribution
        self.visibility = visibility
        self.metadata = {**self.metadata, "render_fps": self.scene.fps(self.frame_skip)}
        self._pristine = self.scene.model
        self.model = copy.copy(self.scene.model)  # envs change geom sizes and colours per episode
        self.data = mujoco.MjData(self.model)
        self._renderer = FrameRenderer(self.scene, self.model, self.height, self.width)
        self.observation_space = gymnasium.spaces.Box(0, 255, (self.height, self.width, 3), np.uint8)
        if spec.actions.kind == "actuators":
            lo, hi = self.model.actuator_ctrlrange.T.astype(np.float32)
            self.action_space = gymnasium.spaces.Box(lo, hi, dtype=np.float32)
        else:
            self.action_space = gymnasium.spaces.Box(0.0, 0.0, (0,), dtype=np.float32)
        self.params: dict = {}
        self._active = np.ones(len(spec.objects), dtype=bool)
        self._frame_index = 0
        self._last = None
        self._contacts = ContactEvents(self.scene)
        self._contact_chunk = max(1, round(CONTACT_SAMPLE_SECONDS / self.scene.timestep))
        self._visibility = VisibilityEvents([o.name for o in spec.objects])
        self._shots = [(0, self.camera)]
        self._violation: Violation | None = None
        self._reward_object = None if spec.reward is None else [o.name for o in spec.objects].index(spec.reward.object)
        self._succeeded = False
        self._episode_events: list[dict] = []

    # --- gymnasium API ------------------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        distribution = options.pop("distribution", self.distribution)
        params = options.pop("params", None)
        shot_plan = options.pop("shots", None)
        violation = options.pop("violation", None)
        if options:
            raise SceneError(f"unknown reset option(s) {sorted(options)}; known: distribution, params, shots, violation",
                             field="options")
        spec = self.scene.spec
        self.params = copy.deepcopy(params) if params is not None else self.scene.sample(self.np_random, distribution)
        self.scene.apply(self.model, self.data, self.params, self.np_random, self._pristine)
        self._active = self.scene.active(self.params)
        self._frame_index = 0
        # Drawn after the scene's quantities, so asking for shots never changes an episode's physics.
        self._shots = shots.schedule(shot_plan, spec.cameras, self.camera, spec.max_frames, self.np_random)
        self._violation = None
        if spec.occluder is not None or violation is not None:
            self._violation = Violation(self.scene, "none" if violation is None else violation)
            self._violation.start(self.model, self.data)
        self._contacts.reset()
        self._visibility.reset()
        self._succeeded = False
        return self._observe()

    def step(self, action):
        a = self._check_action(action)
        self.data.ctrl[:] = a
        # Contacts are looked at every CONTACT_SAMPLE_SECONDS of physics, so contacts much shorter than a frame
        # (an elastic bounce lasts ~3 ms) still become events, without a Python call per physics step.
        left = self.frame_skip
        while left > 0:
            n = min(left, self._contact_chunk)
            mujoco.mj_step(self.model, self.data, nstep=n)
            self._contacts.after_step(self.data, steps=n)
            left -= n
        # mj_step leaves positions, velocities and camera poses computed *before* its last integration: bring
        # them up to the new qpos/qvel, so the frame, object_pos and the recorded state all describe one instant
        # (re-rendering a recorded qpos gives the recorded frame).
        mujoco.mj_forward(self.model, self.data)
        self._frame_index += 1
        if self._violation is not None:
            self._violation.update(self._frame_index, self.model, self.data)
        obs, info = self._observe()
        reward = -info["goal_distance"] if "goal_distance" in info else 0.0
        truncated = self._frame_index >= self.scene.spec.max_frames
        return obs, reward, False, truncated, info

    def render(self):
        return None if self._last is None else self._last.copy()

    def close(self):
        if getattr(self, "_renderer", None) is not None:
            self._renderer.close()
            self._renderer = None

    # --- internals ----------------------------------------------------------------------------------------

    def _check_action(self, action) -> np.ndarray:
        name = self.scene.spec.name
        try:
            a = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError):
            raise ActionError(f"action must be numeric, got {type(action).__name__}", source=name, field="action") from None
        if a.shape != self.action_space.shape:
            raise ActionError(f"expected shape {self.action_space.shape}, got {a.shape}", source=name, field="action")
        if not np.all(np.isfinite(a)):
            raise ActionError(f"action has NaN or inf: {a.tolist()}", source=name, field="action")
        lo, hi = self.action_space.low, self.action_space.high
        if np.any(a < lo - 1e-6) or np.any(a > hi + 1e-6):
            raise ActionError(f"action {a.tolist()} outside bounds [{lo.tolist()}, {hi.tolist()}]", source=name, field="action")
        return a

    @property
    def current_camera(self) -> str:
        """The camera of the current frame (the env's `camera` unless a multi-shot schedule cut away)."""
        return shots.camera_at(self._shots, self._frame_index)

    def _observe(self):
        f = self._frame_index
        camera = self.current_camera
        cid = self.scene.camera_ids[camera]
        edit = self._violation.edit if self._violation is not None else None
        frame = self._renderer.render(self.data, cid, self._active, self.visibility, edit=edit)
        self._last = frame.rgb
        m, d = self.model, self.data
        k = len(self.scene.objects)
        pos = np.zeros((k, 3))
        vel = np.zeros((k, 3))
        for i, ids in enumerate(self.scene.objects):
            if self._active[i]:
                pos[i] = d.xpos[ids.body]
                vel6 = np.zeros(6)
                mujoco.mj_objectVelocity(m, d, mujoco.mjtObj.mjOBJ_BODY, ids.body, vel6, 0)
                vel[i] = vel6[3:]
        info = {
            "qpos": d.qpos.copy(), "qvel": d.qvel.copy(), "ctrl": d.ctrl.copy(),
            "object_pos": pos, "object_vel": vel,
            "object_centroid": np.nan_to_num(frame.centroid, nan=0.0),
            "object_visible": np.where(self._active, np.nan_to_num(frame.visible, nan=0.0), 0.0),
            "object_active": self._active.copy(),
            "camera": camera,
            "intrinsics": cam.intrinsics(m, cid, self.height, self.width),
            "extrinsics": cam.extrinsics(d, cid),
            "params": copy.deepcopy(self.params),
            "frame": f, "time": float(d.time),
        }
        events = self._frame_events(f, camera, frame.full, info)
        if self._violation is not None:
            info["violation"], info["violation_frame"] = self._violation.kind, self._violation.frame
        info["events"] = events
        self._episode_events = (self._episode_events if f else []) + events
        info["caption"] = captions.caption(self.scene.spec, self.params, self._episode_events, 0, f + 1)
        return frame.rgb, info

    def _frame_events(self, f: int, camera: str, full: np.ndarray, info: dict) -> list[dict]:
        """This frame's events (a cut, contacts begun since the last frame, occlusions, reaching the goal); adds
        `goal_distance` and `success` to `info` in scenes with a reward."""
        cut = f == 0 or shots.camera_at(self._shots, f - 1) != camera
        events = [{"frame": f, "type": "shot", "camera": camera}] if cut else []
        events += self._contacts.take(f)
        if self.visibility:
            events += self._visibility.update(f, info["object_visible"], full, self._active, cut)
        r = self.scene.spec.reward
        if r is not None:
            # Measured in the motion plane: the goal site lies flat on the floor, the block's centre above it.
            plane = list(MOTION_PLANES[self.scene.spec.motion_plane])
            goal = self.data.site_xpos[self.scene.goal_site]
            dist = float(np.linalg.norm((info["object_pos"][self._reward_object] - goal)[plane]))
            info["goal_distance"], info["success"] = dist, dist <= r.success_radius
            if info["success"] and not self._succeeded:
                events.append({"frame": f, "type": "goal", "object": r.object})
            self._succeeded = self._succeeded or info["success"]
        return events

    def energy(self) -> float:
        """Kinetic plus potential energy (J), for conservation checks."""
        mujoco.mj_energyPos(self.model, self.data)
        mujoco.mj_energyVel(self.model, self.data)
        return float(self.data.energy.sum())

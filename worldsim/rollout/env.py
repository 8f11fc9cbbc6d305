"""The world model as a gymnasium environment (DIAMOND's `WorldModelEnv`, GameNGen's game loop): the same observation
and action spaces as the scene it learned, `reset` from context frames, and `step(action)` -> the next *generated*
frame, the scene's reward read off that frame (worldsim/rollout/reward.py), and `info` saying what is generated.

| space        | shape      | dtype   | meaning                                                                  |
|--------------|------------|---------|--------------------------------------------------------------------------|
| observation  | (H, W, 3)  | uint8   | the frame; generated after the first `step`, real at `reset`             |
| action       | (A,)       | float32 | the scene's action box, as stored in the weights (push: pusher velocity, m/s) |

Reset options (one source at most; default `mujoco`):

| option        | meaning                                                                                    |
|---------------|--------------------------------------------------------------------------------------------|
| `context`     | (k, H, W, 3) uint8 frames to start from (with `actions` (k, A) into them, `params` to score) |
| `store`       | a store path; with `split` (default `test`), `episode` (0), `start` (0): its frames        |
| `mujoco`      | `True`: render the real scene from `seed` (with `params`, `distribution`), k frames         |
| `state`       | `{"qpos", "qvel"}` with `params`: start from that exact MuJoCo state, rendered by the scene |
| `frames`      | k, context frames taken from a store or MuJoCo (default: the longest training clip - 1)     |
| `caption`     | text conditioning (default: the learned null caption)                                      |

`info`: `generated` (bool: this observation came from the model), `source` (where the context came from),
`frame` (index since reset, context included), `object_pos` (K, 3) m and `object_found` (K,) read from the frame,
`goal_distance`/`success` (scenes with a reward and a known goal), `reward_known`.
A mismatch between the weights and the requested scene, resolution, frame skip or camera is a `WeightsError`.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium
import numpy as np

from worldsim.errors import ActionError, ConfigError
from worldsim.rollout import starts
from worldsim.rollout.autoregressive import Rollout, RolloutConfig
from worldsim.rollout.model import WorldModel
from worldsim.rollout.reward import SceneReader

RESET_OPTIONS = ("context", "actions", "params", "store", "split", "episode", "start", "mujoco", "state", "frames",
                 "distribution", "caption")


def load(weights: str | Path | WorldModel) -> WorldModel:
    return weights if isinstance(weights, WorldModel) else WorldModel.load(weights)


def check_action(action, space: gymnasium.spaces.Box, source: str, batch: int | None = None) -> np.ndarray:
    """The scene's action checks (SceneEnv._check_action): shape, numeric dtype, finite, within the box."""
    shape = space.shape if batch is None else (batch, *space.shape)
    try:
        a = np.asarray(action)
    except (TypeError, ValueError):
        raise ActionError(f"action must be numeric, got {type(action).__name__}", source=source, field="action") from None
    if a.dtype == object or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ActionError(f"action must be a float array, got dtype {a.dtype}", source=source, field="action")
    if a.shape != shape:
        raise ActionError(f"expected shape {shape}, got {a.shape}", source=source, field="action")
    a = a.astype(np.float32)
    if not np.all(np.isfinite(a)):
        raise ActionError(f"action has NaN or inf: {a.tolist()}", source=source, field="action")
    if np.any(a < space.low - 1e-6) or np.any(a > space.high + 1e-6):
        raise ActionError(f"action {a.tolist()} outside bounds [{space.low.tolist()}, {space.high.tolist()}]",
                          source=source, field="action")
    return a


class _Core:
    """What the single and the vector env share: checks against the weights, starts, the reader."""

    def __init__(self, weights, scene, resolution, camera, frame_skip, config, max_frames):
        self.model = load(weights)
        sm = self.model.scene
        self.model.check(scene=scene, frame_skip=frame_skip, camera=camera)
        self.resolution = self.model.resolution(resolution)
        self.camera = camera or sm.cameras[0]
        self.config = config.check()
        from worldsim.sim.registry import get_scene, scene_names

        self.spec = get_scene(sm.name).spec if sm.name in scene_names() else None
        self.max_frames = int(max_frames or (self.spec.max_frames if self.spec else 10**9))
        self.reader = SceneReader(sm.name, self.resolution, self.camera) if self.spec else None
        self.action_space = gymnasium.spaces.Box(sm.action_low, sm.action_high, dtype=np.float32)
        self.observation_space = gymnasium.spaces.Box(0, 255, (*self.resolution, 3), np.uint8)
        self._sim = None

    def sim(self):
        """The real scene at the same resolution and camera (made once, for MuJoCo starts)."""
        if self._sim is None:
            if self.spec is None:
                raise ConfigError(f"{self.model.scene.name!r} is not a registered worldsim scene: give `context`",
                                  field="options")
            from worldsim.sim.scene_env import SceneEnv

            sim = SceneEnv(self.model.scene.name, resolution=self.resolution, camera=self.camera,
                           frame_skip=self.model.scene.frame_skip, visibility=False)
            self.model.check(fps=sim.metadata["render_fps"])  # the scene's timestep may have changed since
            box = sim.action_space
            if box.shape != self.action_space.shape or not (np.allclose(box.low, self.action_space.low, atol=1e-6)
                                                            and np.allclose(box.high, self.action_space.high, atol=1e-6)):
                sim.close()
                from worldsim.errors import WeightsError

                raise WeightsError(f"weights were trained for actions in [{self.action_space.low.tolist()}, "
                                   f"{self.action_space.high.tolist()}], the scene now has [{box.low.tolist()}, "
                                   f"{box.high.tolist()}]", source=self.model.source, field="scene.action_low")
            self._sim = sim
        return self._sim

    def start(self, seed: int | None, options: dict) -> starts.Start:
        unknown = sorted(set(options) - set(RESET_OPTIONS))
        if unknown:
            raise ConfigError(f"unknown reset option(s) {unknown}; known: {list(RESET_OPTIONS)}", field="options")
        k = int(options.get("frames", max(1, self.model.scene.train_frames - 1)))
        if k < 1:
            raise ConfigError(f"need at least one context frame, got {k}", field="options.frames")
        if "context" in options:
            return starts.from_frames(options["context"], options.get("actions"), options.get("params"),
                                      self.model.scene.action_dim)
        if "store" in options:
            return starts.from_store(options["store"], options.get("split", "test"), options.get("episode", 0),
                                     options.get("start", 0), k)
        return starts.from_mujoco(self.sim(), seed, k, params=options.get("params"),
                                  distribution=options.get("distribution"), state=options.get("state"))

    def close(self):
        if self._sim is not None:
            self._sim.close()
            self._sim = None


class WorldModelEnv(gymnasium.Env):
    """A trained world model as a gymnasium env (module docstring). `weights`: a weights file or a `WorldModel`;
    `scene`, `frame_skip`, `camera`, `resolution` are checked against what the weights were trained for."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(self, weights, *, scene: str | None = None, resolution=None, camera: str | None = None,
                 frame_skip: int | None = None, config: RolloutConfig = RolloutConfig(), max_frames: int | None = None,
                 render_mode: str | None = "rgb_array"):
        self.core = _Core(weights, scene, resolution, camera, frame_skip, config, max_frames)
        self.model = self.core.model
        self.metadata = {**self.metadata, "render_fps": self.model.scene.fps}
        self.render_mode = render_mode
        self.observation_space = self.core.observation_space
        self.action_space = self.core.action_space
        self._rollout: Rollout | None = None
        self._last = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = dict(options or {})
        st = self.core.start(seed, options)
        torch_seed = int(self.np_random.integers(2**62))
        self._rollout = Rollout(self.model, st.frames[None], actions=st.actions[None], cameras=self.core.camera,
                                params=self._model_params(st.params), text=options.get("caption"),
                                config=self.core.config, seed=torch_seed, resolution=self.core.resolution)
        self._params = st.params
        self._goal = self.core.reader.goal(st.params) if self.core.reader else None
        self._source = st.source
        self._frame = len(st.frames) - 1
        self._pos = None
        self._last = st.frames[-1].copy()
        return self._last.copy(), self._info(self._last, generated=False)[1]

    def _model_params(self, params):
        return params if self.model.net.cfg.param_dim else None

    def step(self, action):
        if self._rollout is None:
            raise ConfigError("call reset() before step()", field="reset")
        a = check_action(action, self.action_space, self.model.source)
        frame = self._rollout.step(a[None])[0]
        self._frame += 1
        self._last = frame
        reward, info = self._info(frame, generated=True)
        truncated = self._frame >= self.core.max_frames - 1
        return frame.copy(), reward, False, truncated, info

    def _info(self, frame: np.ndarray, generated: bool) -> tuple[float, dict]:
        info = {"generated": generated, "source": self._source, "frame": self._frame}
        reward = 0.0
        if self.core.reader is not None:
            r = self.core.reader.read(frame[None], None if self._pos is None else self._pos[None])
            self._pos = r.pos[0]
            rew, dist, ok = self.core.reader.reward(r.pos, self._goal)
            info.update(object_pos=r.pos[0].copy(), object_found=r.found[0].copy(), reward_known=self._goal is not None)
            if self._goal is not None and self.core.reader.reward_object is not None:
                info.update(goal_distance=float(dist[0]), success=bool(ok[0]))
            reward = float(rew[0])
        return reward, info

    def render(self):
        return None if self._last is None else self._last.copy()

    def close(self):
        self.core.close()


class WorldModelVectorEnv(gymnasium.vector.VectorEnv):
    """`num_envs` rollouts of one world model stepped as one batch (one network call per denoising step).

    All sub-envs reset together (their KV caches are one batch), so they also truncate together; the step after
    that resets them all (gymnasium's next-step autoreset). `reset(seed=s)` starts sub-env i from MuJoCo seed s + i;
    `options={"context": (N, k, H, W, 3)}` from given frames (with `actions` (N, k, A), `params` a list of N)."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": gymnasium.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, weights, num_envs: int, *, scene: str | None = None, resolution=None, camera: str | None = None,
                 frame_skip: int | None = None, config: RolloutConfig = RolloutConfig(),
                 max_frames: int | None = None):
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ConfigError(f"num_envs must be a positive integer, got {num_envs!r}", field="num_envs")
        self.core = _Core(weights, scene, resolution, camera, frame_skip, config, max_frames)
        self.model = self.core.model
        self.num_envs = num_envs
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self.metadata = {**self.metadata, "render_fps": self.model.scene.fps}
        self.render_mode = "rgb_array"
        self._rollout = None
        self._needs_reset = False
        self._seed = None

    def reset(self, *, seed=None, options: dict | None = None):
        if isinstance(seed, (list, tuple)):
            seeds = list(seed)
        else:
            seeds = [None if seed is None else int(seed) + i for i in range(self.num_envs)]
        if len(seeds) != self.num_envs:
            raise ConfigError(f"expected {self.num_envs} seeds, got {len(seeds)}", field="seed")
        self._np_random = np.random.default_rng(seeds[0])
        options = dict(options or {})
        if "context" in options:
            ctx = np.asarray(options["context"])
            if ctx.ndim != 5 or len(ctx) != self.num_envs:
                raise ConfigError(f"expected context (N={self.num_envs}, k, H, W, 3), got {ctx.shape}",
                                  field="options.context")
            acts = options.get("actions")
            params = options.get("params") or [None] * self.num_envs
            sts = [starts.from_frames(ctx[i], None if acts is None else acts[i], params[i],
                                      self.model.scene.action_dim) for i in range(self.num_envs)]
        else:
            sts = [self.core.start(s, options) for s in seeds]
        frames = np.stack([s.frames for s in sts])
        params = [s.params for s in sts]
        self._rollout = Rollout(self.model, frames, actions=np.stack([s.actions for s in sts]),
                                cameras=self.core.camera, params=params if self.model.net.cfg.param_dim else None,
                                text=options.get("caption"), config=self.core.config,
                                seed=int(self._np_random.integers(2**62)), resolution=self.core.resolution)
        self._goals = [self.core.reader.goal(p) for p in params] if self.core.reader else None
        self._sources = [s.source for s in sts]
        self._frame = frames.shape[1] - 1
        self._pos = None
        self._needs_reset = False
        self._last = frames[:, -1].copy()
        return self._last.copy(), self._infos(self._last, False)[1]

    def step(self, actions):
        if self._rollout is None:
            raise ConfigError("call reset() before step()", field="reset")
        if self._needs_reset:
            obs, info = self.reset(seed=None)
            z = np.zeros(self.num_envs)
            return obs, z, np.zeros(self.num_envs, bool), np.zeros(self.num_envs, bool), info
        a = check_action(actions, self.single_action_space, self.model.source, batch=self.num_envs)
        frames = self._rollout.step(a)
        self._frame += 1
        self._last = frames
        rewards, infos = self._infos(frames, True)
        trunc = np.full(self.num_envs, self._frame >= self.core.max_frames - 1)
        self._needs_reset = bool(trunc.any())
        return frames.copy(), rewards, np.zeros(self.num_envs, bool), trunc, infos

    def _infos(self, frames: np.ndarray, generated: bool) -> tuple[np.ndarray, dict]:
        n = self.num_envs
        infos = {"generated": np.full(n, generated), "frame": np.full(n, self._frame),
                 "source": np.array(self._sources, dtype=object)}
        rewards = np.zeros(n)
        reader = self.core.reader
        if reader is not None:
            r = reader.read(frames, self._pos)
            self._pos = r.pos
            infos.update(object_pos=r.pos.copy(), object_found=r.found.copy())
            if reader.reward_object is not None and all(g is not None for g in self._goals):
                pos = r.pos
                d = np.array([np.linalg.norm((pos[i, reader.reward_object] - g)[reader.plane])
                              for i, g in enumerate(self._goals)])
                rewards = -d
                infos.update(goal_distance=d, success=d <= reader.spec.reward.success_radius)
        return rewards, infos

    def render(self):
        return None if self._rollout is None else self._last.copy()

    def close_extras(self, **kwargs):
        self.core.close()


ENV_ID = "worldsim/WorldModel-v0"  # gymnasium.make(ENV_ID, weights="run/model.safetensors", resolution=32)
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="worldsim.rollout.env:WorldModelEnv")

"""Model-predictive control by imagination: a cross-entropy-method planner (CEM; Rubinstein 1999, as used for
planning in learned models by PlaNet, Hafner et al. 2019) choosing `push` actions by rolling candidate action
sequences out in a model, and executing the first few in MuJoCo before planning again.

The model is pluggable (`Dynamics`): `MuJoCoDynamics` imagines with MuJoCo itself from the true state (the
reference: what the planner can do with a perfect model) and `WorldModelDynamics` with a world model from the last
real frames (all candidates in one batched rollout, positions read from the generated frames). Both score a
candidate with the same cost, from object positions in the motion plane:

    cost = mean over imagined action blocks of  goal_distance(reward object)
                                              + shaping * max(0, |pusher - reward object| - reach)

where goal_distance is the scene's own reward (minus it), and the shaping term (the pusher's distance to the block,
beyond touching) gives the search a gradient when no candidate moves the block yet. Actions are piecewise constant
over `repeat` frames (fewer numbers to search, smoother pushes).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Protocol

import mujoco
import numpy as np
from einops import rearrange

from worldsim.errors import ConfigError
from worldsim.sim.events import actuated_objects
from worldsim.sim.spec import MOTION_PLANES


@dataclass(frozen=True)
class CEMConfig:
    horizon: int = 8  # action blocks imagined
    repeat: int = 5  # frames each block holds its action
    population: int = 64  # candidates per iteration
    elites: int = 8  # best candidates refitting the distribution
    iterations: int = 4
    init_std: float = 0.6  # initial std, as a fraction of the action half-range
    min_std: float = 0.05
    replan: int = 5  # frames executed before planning again
    shaping: float = 0.5
    # what a plan executes: "best", the lowest-cost candidate seen (right for a deterministic model such as MuJoCo),
    # or "mean", the final elite mean (PlaNet's choice): with a sampled model each cost is one noisy draw, and the
    # minimum over all draws favours the luckiest sample rather than the best plan
    act: str = "best"

    def check(self) -> CEMConfig:
        for name in ("horizon", "repeat", "population", "elites", "iterations", "replan"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"must be a positive integer, got {v!r}", field=f"planner.{name}")
        if self.elites > self.population:
            raise ConfigError(f"elites {self.elites} > population {self.population}", field="planner.elites")
        if self.act not in ("best", "mean"):
            raise ConfigError(f"must be 'best' or 'mean', got {self.act!r}", field="planner.act")
        return self


class Dynamics(Protocol):
    """Scores candidate action sequences (N, T, A) from the current situation of a real env."""

    def costs(self, env, history: list[np.ndarray], actions: np.ndarray, cfg: CEMConfig) -> np.ndarray: ...


def _roles(scene) -> tuple[int, int]:
    """(pusher index, reward object index) among the scene's objects."""
    spec = scene.spec
    agents = sorted(actuated_objects(scene))
    if spec.reward is None or not agents:
        raise ConfigError(f"scene {spec.name} has no actuated object and reward object to plan for", field="scene")
    return agents[0], [o.name for o in spec.objects].index(spec.reward.object)


def plan_cost(pos: np.ndarray, goal: np.ndarray, scene, shaping: float, reach: float) -> np.ndarray:
    """pos (N, T, K, 3) positions at the end of each block, goal (3,) -> (N,) cost (module docstring)."""
    agent, obj = _roles(scene)
    plane = list(MOTION_PLANES[scene.spec.motion_plane])
    goal_d = np.linalg.norm((pos[:, :, obj] - goal)[..., plane], axis=-1)                  # (N, T)
    touch = np.linalg.norm((pos[:, :, agent] - pos[:, :, obj])[..., plane], axis=-1)        # (N, T)
    return (goal_d + shaping * np.maximum(0.0, touch - reach)).mean(1)


def _reach(env) -> float:
    agent, obj = _roles(env.scene)
    m = env.model
    ga, go = env.scene.objects[agent].geoms[0], env.scene.objects[obj].geoms[0]
    return float(m.geom_size[ga, 0] + m.geom_size[go, 0]) + 0.02


class MuJoCoDynamics:
    """MuJoCo as the planner's model: candidates rolled out from the env's exact state with `mujoco.rollout`
    (C threads, no rendering)."""

    def __init__(self):
        self._rest = None

    def costs(self, env, history, actions, cfg) -> np.ndarray:
        from mujoco import rollout as mjr

        m = env.model
        spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
        state = np.empty(mujoco.mj_stateSize(m, spec))
        mujoco.mj_getState(m, env.data, state, spec)
        N, T, A = actions.shape
        control = np.repeat(actions.astype(np.float64), env.frame_skip, axis=1)            # (N, T * skip, A)
        data = copy.copy(env.data)
        states, _ = mjr.rollout(m, data, state[None], control)                             # (N, T * skip, nstate)
        ends = states[:, env.frame_skip * cfg.repeat - 1 :: env.frame_skip * cfg.repeat]   # (N, blocks, nstate)
        qpos = ends[..., 1 : 1 + m.nq]                                                      # time first, then qpos
        pos = self._positions(env, qpos)                                                    # (N, blocks, K, 3)
        goal = env.data.site_xpos[env.scene.goal_site].copy()
        return plan_cost(pos, goal, env.scene, cfg.shaping, _reach(env))

    @staticmethod
    def _positions(env, qpos: np.ndarray) -> np.ndarray:
        """World positions of slide/free-jointed objects from qpos (..., nq): rest position + joint offsets."""
        m = env.model
        d0 = mujoco.MjData(m)
        mujoco.mj_kinematics(m, d0)
        out = np.zeros((*qpos.shape[:-1], len(env.scene.objects), 3))
        for i, ids in enumerate(env.scene.objects):
            out[..., i, :] = d0.xpos[ids.body]
            for ax, adr in ids.qpos_axes.items():
                out[..., i, ax] += qpos[..., adr] - m.qpos0[adr]
        return out


class WorldModelDynamics:
    """A world model as the planner's model: all candidates imagined in one batched autoregressive rollout from the
    last real frames, positions read from the generated frames (worldsim/rollout/reward.py); an object a frame does
    not show keeps the position last read, starting from the real frames (`observed`). `common_noise`: all
    candidates of a call share one noise draw (common random numbers), so their costs differ by their actions.
    `particles`: each candidate is imagined that many times under independent draws and scored by the mean cost
    (PETS's particles, Chua et al. 2018): one sampled rollout is a noisy cost, and CEM's minimum favours lucky draws."""

    def __init__(self, model, config=None, context: int | None = None, seed: int = 0, common_noise: bool = False,
                 particles: int = 1):
        from worldsim.rollout.autoregressive import RolloutConfig

        if isinstance(particles, bool) or not isinstance(particles, int) or particles < 1:
            raise ConfigError(f"must be a positive integer, got {particles!r}", field="particles")
        if common_noise and particles > 1:
            raise ConfigError("particles of one candidate under one common draw would be the same rollout: give "
                              "common_noise or particles > 1, not both", field="particles")
        self.model, self.common_noise, self.particles = model, common_noise, particles
        self.config = config or RolloutConfig()
        self.context = context or max(1, model.scene.train_frames - 1)
        self.seed = seed
        self.reader = None

    def costs(self, env, history, actions, cfg) -> np.ndarray:
        from worldsim.rollout.autoregressive import Rollout

        P = self.particles
        actions = np.repeat(actions, P, axis=0)                                             # (N P, T, A)
        N, T, A = actions.shape
        frames = np.stack(history[-self.context:])                                          # (k, H, W, 3)
        ctx = np.broadcast_to(frames, (N, *frames.shape))
        r = Rollout(self.model, ctx, config=self.config, seed=self.seed, cameras=env.camera,
                    params=env.unwrapped.params if self.model.net.cfg.param_dim else None,
                    common_noise=self.common_noise)
        self.seed += 1
        start = self.observed(env, history)                                                  # (K, 3)
        pos, prev = [], np.broadcast_to(start, (N, *start.shape))                           # (N, K, 3)
        for t in range(T):
            f = r.step(actions[:, t])
            if (t + 1) % cfg.repeat == 0:
                prev = self.reader.read(f, prev).pos
                pos.append(prev)
        goal = env.data.site_xpos[env.scene.goal_site].copy()  # the goal is scenery: known from the episode
        cost = plan_cost(np.stack(pos, 1), goal, env.scene, cfg.shaping, _reach(env))           # (N P,)
        return rearrange(cost, "(n p) -> n p", p=P).mean(1)

    def observed(self, env, history: list[np.ndarray]) -> np.ndarray:
        """(K, 3) each object's position read from the real frames so far, the latest frame that shows it: where an
        imagined frame loses an object, the cost keeps it there, not at the scene's resting position (which would
        score a lost block as teleported home)."""
        from worldsim.rollout.reward import SceneReader

        if self.reader is None:
            self.reader = SceneReader(env.scene.spec.name, (env.height, env.width), env.camera)
        pos = None  # the reader's own fill: an object not found keeps `previous` (first: its resting position)
        for frame in history:
            pos = self.reader.read(frame[None], pos).pos                                    # (1, K, 3)
        return pos[0]


class PairedDynamics:
    """Plans with `model` and scores the same candidates with `reference` too (MuJoCo, from the env's true state),
    keeping both: how well a world model ranks plans, apart from the planner's search (scripts/plan_rank.py)."""

    def __init__(self, model: Dynamics, reference: Dynamics):
        self.model, self.reference = model, reference
        self.log: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (actions (N, T, A), model, reference costs)

    def costs(self, env, history, actions, cfg) -> np.ndarray:
        c = self.model.costs(env, history, actions, cfg)
        self.log.append((actions.copy(), c, self.reference.costs(env, history, actions, cfg)))
        return c


class CEMPlanner:
    """Cross-entropy method over piecewise-constant action sequences, warm-started from the previous plan."""

    def __init__(self, dynamics: Dynamics, low: np.ndarray, high: np.ndarray, config: CEMConfig = CEMConfig(),
                 seed: int = 0):
        self.dynamics, self.cfg = dynamics, config.check()
        self.low, self.high = np.asarray(low, np.float64), np.asarray(high, np.float64)
        self.rng = np.random.default_rng(seed)
        self.mean = np.zeros((config.horizon, len(self.low)))

    def plan(self, env, history: list[np.ndarray]) -> np.ndarray:
        """The chosen action sequence (`CEMConfig.act`), (horizon * repeat, A) frames of float32 actions."""
        cfg = self.cfg
        half = (self.high - self.low) / 2
        mean = self.mean.copy()
        std = np.broadcast_to(cfg.init_std * half, mean.shape).copy()
        best, best_cost = mean, np.inf
        for _ in range(cfg.iterations):
            z = self.rng.standard_normal((cfg.population, *mean.shape))
            blocks = np.clip(mean + std * z, self.low, self.high)                            # (N, horizon, A)
            blocks[0] = mean  # the incumbent always competes
            costs = self.dynamics.costs(env, history, np.repeat(blocks, cfg.repeat, axis=1), cfg)
            order = np.argsort(costs)
            elite = blocks[order[: cfg.elites]]
            mean, std = elite.mean(0), np.maximum(elite.std(0), cfg.min_std * half)
            if costs[order[0]] < best_cost:
                best, best_cost = blocks[order[0]], costs[order[0]]
        if cfg.act == "mean":
            best = mean
        shift = cfg.replan // cfg.repeat if cfg.replan % cfg.repeat == 0 else 0
        self.mean = np.concatenate([best[shift:], np.repeat(best[-1:], shift, axis=0)]) if shift else best.copy()
        return np.repeat(best, cfg.repeat, axis=0).astype(np.float32)


@dataclass
class EpisodeResult:
    success: bool
    frames: int  # frames executed until success (or the limit)
    final_distance: float
    video: np.ndarray  # (T, H, W, 3) MuJoCo's frames of the executed episode


def run_episode(env, planner: CEMPlanner, seed: int, max_frames: int | None = None, options: dict | None = None,
                progress: bool = False) -> EpisodeResult:
    """Plan with the planner's model, execute in MuJoCo (`env`, a push-like SceneEnv) until success or
    `max_frames`."""
    from tqdm.auto import tqdm

    obs, info = env.reset(seed=seed, options=options)
    history, video = [obs], [obs]
    planner.mean[:] = 0.0
    limit = max_frames or env.scene.spec.max_frames
    t = 0
    with tqdm(total=limit, unit="frame", desc=f"plan episode {seed}", disable=not progress) as bar:
        while t < limit and not info["success"]:
            actions = planner.plan(env, history)
            for a in actions[: planner.cfg.replan]:
                obs, _, _, _, info = env.step(a)
                history = (history + [obs])[-16:]
                video.append(obs)
                t += 1
                bar.update(1)
                if info["success"] or t >= limit:
                    break
    return EpisodeResult(bool(info["success"]), t, float(info["goal_distance"]), np.stack(video))

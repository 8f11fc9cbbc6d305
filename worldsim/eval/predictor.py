"""What the evaluation asks of a model, and the baselines that answer it with no learning.

A `Predictor` continues videos: given k context frames and the true actions, it returns the next H frames.

    predict(context: (B, k, H_px, W_px, 3) uint8,
            actions: (B, k + H - 1, A) float32,   # actions[:, t] moves frame t to frame t + 1
            horizon: int,                          # H
            *, conditioning: Conditioning,         # scene, fps, camera(s) and the spec's `conditioned` quantities
            seed: int,                             # all sampling randomness (the same seed gives the same frames)
            state: SimState | None = None,         # privileged simulator state: read only if `privileged`
    ) -> (B, H, H_px, W_px, 3) uint8

Multi-shot episodes (the consistency probes' camera cuts) set `conditioning.cameras`: the camera of each of the
k + H frames, shared by the batch; a predictor that cannot follow cuts may ignore it (and will fail the cut probe).

Attributes: `name` (str), `privileged` (bool: it reads the simulator's state, so it is a reference, never a
model), `scenes` (tuple of scene names it was made for, or None for any), `resolution` ((h, w), a tuple of such
pairs, or None for any),
and `identity() -> dict` (name, kind, sha256 of its weights or of its definition, config), which `metrics.json`
records. The world model (issue 5) implements this protocol through `world_model.WorldModelPredictor`; `evaluate.check_predictor` checks a predictor against
the evaluation setting before any episode is rolled out.

Baselines (issue 8; docs/metrics.md):
- `CopyLast`: every predicted frame is the last context frame (GameNGen-style floor for next-frame PSNR).
- `LinearExtrapolation`: each object, found by colour, is shifted by its last displacement once per step over a
  background recovered from the context frames (constant velocity; no gravity, no bounces).
- `PerturbedMuJoCo`: MuJoCo itself from the last context state with each active object's position and velocity
  perturbed by N(0, (1 mm)^2) and N(0, (1 mm/s)^2) per axis: the physical-variance reference of Physics-IQ (two
  takes of the same scene). With `sigma_pos = sigma_vel = 0` it is the exact simulator (a test oracle).
"""

from __future__ import annotations

import hashlib
import inspect
import json
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import mujoco
import numpy as np

from worldsim.eval.parse import colour_masks, parse

PERTURB_POS_M = 1e-3  # 1 mm, about 1/70 px at 32 px in `bounce`: "barely perturbed"
PERTURB_VEL_MPS = 1e-3  # 1 mm/s, 0.05% of a typical 2 m/s speed


@dataclass(frozen=True)
class Conditioning:
    """What a predictor may know besides pixels and actions: the scene, its frame rate and camera, and per episode
    the quantities the spec declares `conditioned` (hidden from pixels, handed to the model)."""

    scene: str
    fps: float
    camera: str
    params: tuple[dict, ...] = ()  # per episode: {name: value} of the spec's conditioned quantities only
    cameras: tuple[str, ...] | None = None  # multi-shot: the camera of each of the k + H frames (shared by the batch)


@dataclass(frozen=True)
class SimState:
    """The simulator's full state at the last context frame, for privileged predictors (references, oracles)."""

    scene: str
    resolution: tuple[int, int]
    camera: str
    frame_skip: int
    params: tuple[dict, ...]  # per episode: every scene quantity (sizes, colours, ...)
    state: np.ndarray  # (B, n) float64, mujoco.mj_getState(..., mjSTATE_INTEGRATION)


@runtime_checkable
class Predictor(Protocol):
    name: str
    privileged: bool
    scenes: tuple[str, ...] | None
    resolution: tuple[int, int] | tuple[tuple[int, int], ...] | None

    def identity(self) -> dict: ...

    def predict(self, context: np.ndarray, actions: np.ndarray, horizon: int, *, conditioning: Conditioning,
                seed: int, state: SimState | None = None) -> np.ndarray: ...


def definition_hash(obj, config: dict) -> str:
    """sha256 of a baseline's class source and config: its identity when it has no weights."""
    src = inspect.getsource(type(obj))
    return hashlib.sha256((src + json.dumps(config, sort_keys=True)).encode()).hexdigest()


class _Baseline:
    privileged = False
    scenes = None
    resolution = None

    def config(self) -> dict:
        return {}

    def identity(self) -> dict:
        return {"name": self.name, "kind": "baseline", "privileged": self.privileged, "config": self.config(),
                "sha256": definition_hash(self, self.config())}


class CopyLast(_Baseline):
    """Repeat the last context frame H times."""

    name = "copy-last"

    def predict(self, context, actions, horizon, *, conditioning, seed, state=None):
        return np.repeat(context[:, -1:], horizon, axis=1)


@dataclass
class LinearExtrapolation(_Baseline):
    """Shift each object's pixels (found by colour in the last context frame) by h times its last displacement.

    The displacement is the difference of the object's colour centres in the last two context frames, rounded to
    whole pixels per step when painted. Pixels an object leaves show the background: per pixel, the latest context
    frame in which no object colour is there, else the median of all such pixels. Objects are drawn in spec order."""

    colours: np.ndarray  # (K, 3) the scene's object colours
    name: str = field(default="linear", init=False)

    def config(self) -> dict:
        return {"colours": np.asarray(self.colours).tolist()}

    def predict(self, context, actions, horizon, *, conditioning, seed, state=None):
        b, k, h, w, _ = context.shape
        masks = colour_masks(context, self.colours)  # (B, k, K, H, W)
        any_obj = masks.any(2)  # (B, k, H, W)
        out = np.empty((b, horizon, h, w, 3), np.uint8)
        centres = parse(context[:, -2:], self.colours).centre if k >= 2 else None  # (B, 2, K, 2)
        for i in range(b):
            bg = self._background(context[i], any_obj[i])
            step = np.zeros((len(self.colours), 2)) if centres is None else np.nan_to_num(centres[i, 1] - centres[i, 0])
            for t in range(horizon):
                frame = bg.copy()
                for o in range(len(self.colours)):
                    m = masks[i, -1, o]
                    if not m.any():
                        continue
                    du, dv = np.rint(step[o] * (t + 1)).astype(int)
                    rows, cols = np.nonzero(m)
                    rr, cc = rows + dv, cols + du
                    ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
                    frame[rr[ok], cc[ok]] = context[i, -1, rows[ok], cols[ok]]
                out[i, t] = frame
        return out

    @staticmethod
    def _background(frames: np.ndarray, objects: np.ndarray) -> np.ndarray:
        """(k, H, W, 3) frames and (k, H, W) object masks -> (H, W, 3): the latest object-free value per pixel."""
        free = ~objects
        bg = np.empty(frames.shape[1:], np.uint8)
        if free.any():
            bg[:] = np.median(frames[free], axis=0).astype(np.uint8)
        else:
            bg[:] = 0
        for t in range(len(frames)):  # later frames overwrite earlier ones
            bg[free[t]] = frames[t][free[t]]
        return bg


@dataclass
class PerturbedMuJoCo(_Baseline):
    """MuJoCo from the last context state, with each active object's position and velocity barely perturbed.

    Privileged: it reads `SimState` (the true state) and is a reference, never a model. Each episode's perturbation
    is drawn from `np.random.default_rng([seed, episode index])`, so two seeds give two independent takes."""

    scene: str
    sigma_pos: float = PERTURB_POS_M
    sigma_vel: float = PERTURB_VEL_MPS
    name: str = "perturbed"
    privileged = True

    def config(self) -> dict:
        return {"scene": self.scene, "sigma_pos_m": self.sigma_pos, "sigma_vel_mps": self.sigma_vel}

    def predict(self, context, actions, horizon, *, conditioning, seed, state=None):
        from worldsim.sim.scene_env import SceneEnv

        if state is None:
            raise ValueError("PerturbedMuJoCo is privileged: pass the simulator state")
        b, k = context.shape[:2]
        env = SceneEnv(state.scene, resolution=state.resolution, frame_skip=state.frame_skip, camera=state.camera,
                       visibility=False)
        out = np.empty((b, horizon, *context.shape[2:]), np.uint8)
        try:
            for i in range(b):
                options = {"params": state.params[i]}
                if conditioning is not None and conditioning.cameras is not None:
                    # frame 0 of the env is the last context frame: cut where the episode cuts
                    cams = list(conditioning.cameras[k - 1:])
                    options["shots"] = [[0, cams[0]]] + [[t, c] for t, c in enumerate(cams) if t and c != cams[t - 1]]
                env.reset(seed=0, options=options)
                mujoco.mj_setState(env.model, env.data, state.state[i], mujoco.mjtState.mjSTATE_INTEGRATION)
                rng = np.random.default_rng([seed, i])
                for ids, active in zip(env.scene.objects, env.scene.active(state.params[i])):
                    if not active:
                        continue
                    for adr in ids.qpos_axes.values():
                        env.data.qpos[adr] += rng.normal(0.0, self.sigma_pos)
                    for adr in ids.qvel_axes.values():
                        env.data.qvel[adr] += rng.normal(0.0, self.sigma_vel)
                mujoco.mj_forward(env.model, env.data)
                for t in range(horizon):
                    out[i, t] = env.step(actions[i, k - 1 + t])[0]
        finally:
            env.close()
        return out


def baseline(name: str, scene: str) -> Predictor:
    """A baseline by name (`copy-last`, `linear`, `perturbed`) for a scene."""
    from worldsim.sim.registry import get_scene

    if name == "copy-last":
        return CopyLast()
    if name == "linear":
        return LinearExtrapolation(np.array([o.colour for o in get_scene(scene).spec.objects]))
    if name == "perturbed":
        return PerturbedMuJoCo(scene)
    raise KeyError(name)


BASELINES = ("copy-last", "linear", "perturbed")

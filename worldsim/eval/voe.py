"""Violation of expectation (IntPhys, Riochet et al. 2018; IntPhys 2, Bordes et al. 2025), scored by surprise.

A *set* is one `occlusion` episode rendered as its possible clip and its impossible twins (`vanish`, `teleport`,
`recolour`; worldsim/sim/violation.py): the physics is the same step for step, so the clips are bit-equal before
the violation frame. A scorer gives every clip a surprise; it passes a set for a violation type when the possible
clip is strictly less surprising than that impossible twin (a tie counts as a failure: a scorer that cannot tell
the clips apart is at chance, not right). Accuracy per type is the fraction of sets passed, with a bootstrap 95%
interval over sets; the issue fixes >= `MIN_SETS` = 50 sets per type for reported figures.

Scorers (the `SurpriseScorer` protocol):

    surprise(clips: (B, T, H, W, 3) uint8, actions: (B, T - 1, A) float32, *, conditioning, seed: int,
             state: SimState | None = None) -> (B,) float

  Every call gets all clips of one set, and **all clips of one call must share the same random numbers** (common
  random numbers: the same noise levels and the same noise for each clip), so the difference in surprise is due to
  the clips, not to the draws.
- `DenoisingSurprise`: a diffusion model's denoising loss (IntPhys 2 / LikePhys: the loss is a likelihood proxy),
  averaged over `n_draws` (noise level, noise) draws that are shared by the clips of a call. The world model supplies
  `loss(x, noise, level, conditioning) -> (B,)` on model-side tensors `B T C H W` in [-1, 1]. A world model offers
  two: `denoising_loss` (every frame of a training-length window noised alike: the joint clip, as first fixed) and
  `next_frame_loss` (each frame noised after its clean past, teacher-forced: the conditional a rollout samples).
  Both are reported; a model whose permanence lives in its next-frame predictions shows it only in the second.
- `SimulatorSurprise`: the exact simulator (privileged; a test oracle). It re-simulates the set's episode from its
  first state and returns each clip's mean squared difference to that rollout: 0 for the possible clip, more for
  any impossible one, so it must pass every set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol, runtime_checkable

import mujoco
import numpy as np
import torch
from einops import rearrange, repeat
from tqdm.auto import tqdm

from worldsim.eval.paired import episode_seed, sim_state
from worldsim.eval.predictor import Conditioning, SimState
from worldsim.eval.stats import bootstrap_mean

VIOLATION_TYPES = ("vanish", "teleport", "recolour")
MIN_SETS = 50
VOE_SCENE = "occlusion"


@dataclass
class VoESet:
    """One matched set: the possible clip and its impossible twins, all from one episode."""

    seed: int
    params: dict
    start: np.ndarray  # MuJoCo integration state at frame 0
    clips: dict[str, np.ndarray]  # "none" and each violation type -> (T, H, W, 3) uint8
    actions: np.ndarray  # (T - 1, A)
    violation_frame: int


def make_sets(n: int, *, scene: str = VOE_SCENE, kinds: tuple[str, ...] = VIOLATION_TYPES, seed: int = 0,
              resolution: int = 32, frames: int | None = None, distribution: str = "id",
              progress: bool = False) -> list[VoESet]:
    """Render `n` matched sets of `frames` frames (default: the scene's whole episode)."""
    from worldsim.sim.scene_env import SceneEnv

    env = SceneEnv(scene, resolution=resolution, visibility=False, distribution=distribution)
    frames = frames or env.scene.spec.max_frames
    actions = np.zeros((frames - 1, *env.action_space.shape), np.float32)
    out = []
    try:
        for i in tqdm(range(n), desc=f"VoE sets ({scene})", unit="set", disable=not progress):
            env_seed = int(episode_seed(scene, "voe/" + distribution, seed, i).generate_state(1)[0])
            clips, vf = {}, {}
            for kind in ("none", *kinds):
                obs, info = env.reset(seed=env_seed, options={"violation": kind})
                if kind == "none":
                    start, params = sim_state(env), info["params"]
                clip = [obs]
                for t in range(frames - 1):
                    obs, *_, info = env.step(actions[t])
                    clip.append(obs)
                clips[kind], vf[kind] = np.stack(clip), info["violation_frame"]
            out.append(VoESet(env_seed, params, start, clips, actions, vf["none"]))
        return out
    finally:
        env.close()


@runtime_checkable
class SurpriseScorer(Protocol):
    name: str
    privileged: bool

    def surprise(self, clips: np.ndarray, actions: np.ndarray, *, conditioning: Conditioning, seed: int,
                 state: SimState | None = None) -> np.ndarray: ...


@dataclass
class DenoisingSurprise:
    """Surprise = a diffusion model's denoising loss under common random numbers (see the module docstring).

    `loss(x, noise, level, conditioning) -> (N,)`: x and noise are float tensors `N T C H W` (x in [-1, 1]); level is
    an (N, T) tensor of per-frame quantiles in [0.02, 0.98] of the model's own training noise distribution; the model
    maps it to its noise scale (`world_model.WorldModelPredictor.denoising_loss` for worldsim's EDM models). All
    draws go in one call, N = n_draws × clips, draw-major (fewer, larger forward passes: about 10-15% faster on
    2 CPU cores): within a draw every clip shares one noise and one level for all its frames; `conditioning.params`
    is repeated per draw to match."""

    loss: Callable[..., torch.Tensor]
    n_draws: int = 8
    name: str = "denoising-loss"
    privileged = False

    def surprise(self, clips, actions, *, conditioning, seed, state=None):
        x = rearrange(torch.from_numpy(np.ascontiguousarray(clips)).float() / 127.5 - 1.0, "b t h w c -> b t c h w")
        b, t = x.shape[:2]
        noise, level = [], []
        for d in range(self.n_draws):
            g = torch.Generator().manual_seed(int(seed) * 1009 + d)
            noise.append(torch.randn(x.shape[1:], generator=g))  # one noise for every clip of the set
            level.append(torch.rand((), generator=g).clamp(0.02, 0.98))
        noise = repeat(torch.stack(noise), "d t c h w -> (d b) t c h w", b=b)
        level = repeat(torch.stack(level), "d -> (d b) t", b=b, t=t)
        if conditioning is not None and conditioning.params:
            conditioning = replace(conditioning, params=tuple(conditioning.params) * self.n_draws)
        loss = self.loss(repeat(x, "b ... -> (d b) ...", d=self.n_draws), noise, level, conditioning)  # (D*B,)
        return rearrange(loss.double(), "(d b) -> d b", b=b).mean(0).numpy()


@dataclass
class SimulatorSurprise:
    """The exact simulator as a scorer (privileged test oracle): mean squared difference to MuJoCo's own rollout."""

    scene: str = VOE_SCENE
    name: str = "simulator"
    privileged = True

    def surprise(self, clips, actions, *, conditioning, seed, state=None):
        from worldsim.sim.scene_env import SceneEnv

        b, t, h, w, _ = clips.shape
        env = SceneEnv(state.scene, resolution=(h, w), camera=state.camera, frame_skip=state.frame_skip,
                       visibility=False)
        try:
            out = np.empty(b)
            for i in range(b):
                obs, _ = env.reset(seed=0, options={"params": state.params[i]})
                mujoco.mj_setState(env.model, env.data, state.state[i], mujoco.mjtState.mjSTATE_INTEGRATION)
                mujoco.mj_forward(env.model, env.data)
                sim = [obs]
                for s in range(t - 1):
                    sim.append(env.step(actions[i, s])[0])
                out[i] = float(((np.stack(sim).astype(np.float64) - clips[i]) ** 2).mean())
            return out
        finally:
            env.close()


def accuracy(scorer: SurpriseScorer, sets: list[VoESet], *, scene: str = VOE_SCENE, seed: int = 0,
             progress: bool = False) -> dict:
    """Per violation type: accuracy with its interval, and per-set surprises (possible, impossible)."""
    from worldsim.sim.registry import get_scene

    sc = get_scene(scene)
    kinds = [k for k in sets[0].clips if k != "none"]
    passed = {k: [] for k in kinds}
    margins = {k: [] for k in kinds}
    for j, s in enumerate(tqdm(sets, desc=f"VoE {scorer.name}", unit="set", disable=not progress)):
        order = ["none", *kinds]
        clips = np.stack([s.clips[k] for k in order])
        acts = np.repeat(s.actions[None], len(order), 0)
        h, w = clips.shape[2:4]
        state = None
        if scorer.privileged:
            state = SimState(scene, (h, w), sc.spec.cameras[0], sc.spec.frame_skip, (s.params,) * len(order),
                             np.repeat(s.start[None], len(order), 0))
        cond = Conditioning(scene, sc.fps(), sc.spec.cameras[0],
                            tuple({n: s.params[n] for n in sc.spec.conditioned} for _ in order))
        sur = np.asarray(scorer.surprise(clips, acts, conditioning=cond, seed=seed + j, state=state), np.float64)
        for i, k in enumerate(kinds, start=1):
            passed[k].append(float(sur[0] < sur[i]))
            margins[k].append(float(sur[i] - sur[0]))
    return {k: {"accuracy": bootstrap_mean(np.array(passed[k]), seed=seed).to_json(), "sets": len(passed[k]),
                "surprise_margin": bootstrap_mean(np.array(margins[k]), seed=seed).to_json()} for k in kinds}

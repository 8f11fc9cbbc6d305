"""How well a world model ranks `push` plans, apart from the planner's search: at states along MuJoCo-planned episodes,
the world-model CEM planner plans as `worldsim plan --model` does, and every candidate it imagines is scored by
MuJoCo too, from the true state.

    .venv/bin/python scripts/plan_rank.py --model worldsim/pretrained/push.safetensors --seeds 0-7 --out rank.json

Why: a planning run takes minutes an episode and its success is one noisy bit; these figures separate the model's
ranking (rank correlation of its costs with MuJoCo's over one iteration's candidates) from the choice the planner
makes with it (MuJoCo's cost of the executed plan, as `act=best` and `act=mean` would choose it), each beside MuJoCo
planning itself (0 regret) and the first iteration's random candidates (regret 1). A manual tool, not a test."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from worldsim.rollout.autoregressive import RolloutConfig
from worldsim.rollout.model import WorldModel
from worldsim.rollout.planner import CEMConfig, CEMPlanner, MuJoCoDynamics, PairedDynamics, WorldModelDynamics
from worldsim.sim.scene_env import SceneEnv


def ranks(x: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(x)).astype(float)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def seeds(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def measure(env, history, imagined, reference, mujoco, cfg, seed: int, frame: int) -> dict:
    """One state: the world-model planner (its dynamics a `PairedDynamics`) plans from a cold start, every candidate
    scored by MuJoCo too."""
    paired = imagined.dynamics
    paired.log.clear()
    imagined.mean[:] = 0.0
    imagined.plan(env, history)
    first, last = paired.log[0], paired.log[-1]
    every = np.concatenate([c for _, c, _ in paired.log])
    every_mj = np.concatenate([r for _, _, r in paired.log])
    elite = last[0][np.argsort(last[1])[: cfg.elites]].mean(0, keepdims=True)  # (1, T, A): the log holds frames
    reference.mean[:] = 0.0
    best = reference.plan(env, history)[None]                                              # (1, T, A)
    row = {"seed": seed, "frame": frame,
           "spearman_first_iteration": spearman(first[1], first[2]),
           "spearman_all": spearman(every, every_mj),
           "mujoco_plan": float(mujoco.costs(env, history, best, cfg)[0]),
           "random": float(first[2].mean()),
           "model_best": float(every_mj[np.argmin(every)]),
           "model_mean": float(mujoco.costs(env, history, elite, cfg)[0])}
    span = max(row["random"] - row["mujoco_plan"], 1e-9)
    for k in ("model_best", "model_mean"):
        row[f"{k}_regret"] = (row[k] - row["mujoco_plan"]) / span
    tqdm.write(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}))
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--seeds", default="0-7", help="episode seeds, e.g. 0-7")
    p.add_argument("--frames", default="0,10,20", help="states measured: frames into the MuJoCo-planned episode")
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--common-noise", action="store_true", help="one noise draw for all candidates of a call")
    p.add_argument("--particles", type=int, default=1, help="imagined rollouts per candidate, costs averaged")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    at = sorted(int(f) for f in args.frames.split(","))
    if any(f % 10 for f in at):
        p.error("--frames must be multiples of 10, the frames executed between plans")
    cfg = CEMConfig(horizon=6, repeat=5, population=args.population, elites=max(1, args.population // 8),
                    iterations=3, replan=10)  # `worldsim plan`'s defaults
    model = WorldModel.load(args.model)
    env = SceneEnv("push", resolution=(32, 32), visibility=False)
    mujoco = MuJoCoDynamics()
    rows = []
    for seed in tqdm(seeds(args.seeds), desc="episodes"):
        obs, info = env.reset(seed=seed)
        history = [obs]
        reference = CEMPlanner(mujoco, env.action_space.low, env.action_space.high, cfg, seed=seed)
        dynamics = PairedDynamics(WorldModelDynamics(model, RolloutConfig(steps=args.steps), seed=seed,
                                                     common_noise=args.common_noise, particles=args.particles),
                                  mujoco)
        imagined = CEMPlanner(dynamics, env.action_space.low, env.action_space.high, cfg, seed=seed)
        t = 0
        while True:
            if t in at and not info["success"]:
                rows.append(measure(env, history, imagined, reference, mujoco, cfg, seed, t))
            if t >= at[-1] or info["success"]:
                break
            for a in reference.plan(env, history)[: cfg.replan]:  # between measured states: MuJoCo's plans
                obs, _, _, _, info = env.step(a)
                history = (history + [obs])[-16:]
                t += 1
    env.close()
    keys = ("spearman_first_iteration", "spearman_all", "model_best_regret", "model_mean_regret")
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys}
    summary |= {f"{k}_by_frame": {f: float(np.mean([r[k] for r in rows if r["frame"] == f])) for f in at}
                for k in keys}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {"model": args.model, "common_noise": args.common_noise, "particles": args.particles, "planner": vars(cfg),
              "summary": summary, "rows": rows}
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

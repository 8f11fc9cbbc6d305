"""`worldsim plan --out DIR [--model WEIGHTS]`: CEM planning on `push`, imagined in a world model (or in MuJoCo
itself, the reference, without `--model`), executed in MuJoCo; prints the success rate and writes one video per
episode and summary.json (rewritten after every episode, so a stopped run keeps the episodes it planned).

    worldsim plan --episodes 10 --out out/plan_mujoco
    worldsim plan --model run/model.safetensors --episodes 10 --out out/plan_wm
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="weights to imagine with (default: MuJoCo itself, the reference)")
    p.add_argument("--scene", default="push")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--resolution", type=int, default=32)
    p.add_argument("--horizon", type=int, default=6, help="action blocks imagined")
    p.add_argument("--repeat", type=int, default=5, help="frames per action block")
    p.add_argument("--population", type=int, default=32)
    p.add_argument("--iterations", type=int, default=3)
    p.add_argument("--replan", type=int, default=10, help="frames executed between plans")
    p.add_argument("--act", default="best", choices=("best", "mean"),
                   help="execute the lowest-cost candidate seen, or the final elite mean (less lucky-draw bias)")
    p.add_argument("--common-noise", action="store_true",
                   help="imagine all candidates of a plan under one noise draw (common random numbers)")
    p.add_argument("--particles", type=int, default=1,
                   help="imagined rollouts per candidate, its cost their mean (world model only; compute x N)")
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps per imagined frame (default: the weights' own, 3 unless their file says)")
    p.add_argument("--format", default="mp4", choices=("mp4", "gif"))
    p.add_argument("--no-progress", action="store_true")


def main(args: argparse.Namespace) -> int:
    from worldsim.errors import ConfigError
    from worldsim.rollout.autoregressive import RolloutConfig
    from worldsim.rollout.outputs import write_outputs
    from worldsim.rollout.planner import CEMConfig, CEMPlanner, MuJoCoDynamics, WorldModelDynamics, run_episode
    from worldsim.sim.scene_env import SceneEnv

    if args.episodes < 1:
        raise ConfigError(f"need at least one episode, got {args.episodes}", field="--episodes")
    cfg = CEMConfig(horizon=args.horizon, repeat=args.repeat, population=args.population,
                    elites=max(1, args.population // 8), iterations=args.iterations, replan=args.replan,
                    act=args.act).check()
    res = (args.resolution, args.resolution)
    if args.model:
        from worldsim.rollout.model import WorldModel

        model = WorldModel.load(args.model)
        model.check(scene=args.scene, resolution=res)
        dynamics = WorldModelDynamics(model, RolloutConfig(steps=args.steps), seed=args.seed,
                                      common_noise=args.common_noise, particles=args.particles)
        name = "world model"
    else:
        for flag, given in (("--particles", args.particles != 1), ("--common-noise", args.common_noise)):
            if given:  # MuJoCo's costs are exact: one rollout each, no noise to share or average
                raise ConfigError(f"{flag} applies to a world model: give --model", field=flag)
        dynamics, name = MuJoCoDynamics(), "MuJoCo"
    env = SceneEnv(args.scene, resolution=res, visibility=False)
    planner = CEMPlanner(dynamics, env.action_space.low, env.action_space.high, cfg, seed=args.seed)
    results = []
    try:
        for i in range(args.episodes):
            r = run_episode(env, planner, seed=args.seed + i, max_frames=args.max_frames,
                            progress=not args.no_progress)
            write_outputs(args.out, f"episode{i:03d}", r.video[None], env.metadata["render_fps"], args.format)
            results.append({"seed": args.seed + i, "success": r.success, "frames": r.frames,
                            "final_distance_m": r.final_distance})
            # after every episode: a world-model episode takes minutes on a CPU, and a stopped run keeps its figures
            rate = _write_summary(args, cfg, results)
    finally:
        env.close()
    print(f"{name} as the model: solved {sum(r['success'] for r in results)}/{len(results)} {args.scene} episodes "
          f"({rate:.0%}); wrote {args.out}")
    return 0


def _write_summary(args: argparse.Namespace, cfg, results: list[dict]) -> float:
    """Write summary.json for the episodes so far (atomically: a stopped run never leaves half a file); the rate."""
    rate = sum(r["success"] for r in results) / len(results)
    summary = {"model": args.model or "mujoco", "scene": args.scene, "planner": vars(cfg),
               "imagination": {"particles": args.particles, "common_noise": args.common_noise, "steps": args.steps}
               if args.model else None, "success_rate": rate,
               "episodes_planned": len(results), "episodes_asked": args.episodes, "episodes": results}
    tmp = args.out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(args.out / "summary.json")
    return rate

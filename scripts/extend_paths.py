"""Which way of extending a clip keeps the balls: frame-by-frame rollouts against whole-clip sampling, forward and
backward, on the mode probes' fresh `occlusion` windows, scored like the extend-backward probe (within 2 px).

    .venv/bin/python scripts/extend_paths.py --model worldsim/pretrained/occlusion.safetensors --episodes 32

Rows: `forward rollout` (the first k frames as a rollout's context), `forward whole clip` (`generate`'s
`extend_forward`: all made frames denoised together), `backward` (`generate`'s `extend_backward`: whole-clip
bidirectional, or for weights trained on reversed clips a rollout in reversed time), the rollout of the clip played
backward without being told so (what a forward-only model does in reversed time), and, for weights with the
direction embedding, `forward rollout told it runs backward`. Why: docs/experiments.md, E31.
A manual tool, not a test."""

from __future__ import annotations

import argparse

import numpy as np

from worldsim.eval.modes import EXTEND_TOLERANCE_PX, centre_checks
from worldsim.eval.paired import fresh_episodes
from worldsim.rollout import Rollout, RolloutConfig, WorldModel, generate
from worldsim.sim.registry import get_scene


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--given", type=int, default=4)
    p.add_argument("--made", type=int, default=16)
    p.add_argument("--steps", type=int, default=3, help="denoising steps (per frame for rollouts)")
    p.add_argument("--start", type=int, default=14)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    model = WorldModel.load(args.model)
    k, n, T = args.given, args.made, args.given + args.made
    colours = np.array([o.colour for o in get_scene("occlusion").spec.objects])
    ep = fresh_episodes("occlusion", args.episodes, T, resolution=32, distribution="id", seed=args.seed,
                        start=args.start)
    B = len(ep.frames)
    cfg = RolloutConfig(steps=args.steps)

    def forward(reversed_: bool = False) -> np.ndarray:
        return Rollout(model, ep.frames[:, :k], config=cfg, seed=args.seed, cameras=ep.camera,
                       reversed=reversed_).run(horizon=n)

    rows = {"forward rollout": (forward(), slice(k, T)),
            "forward whole clip": (generate(model, "extend_forward", clip=ep.frames[:, :k], frames=T,
                                            steps=args.steps, batch=B, seed=args.seed, cameras=ep.camera
                                            ).frames[:, k:], slice(k, T)),
            "backward": (generate(model, "extend_backward", clip=ep.frames[:, n:], frames=T, steps=args.steps,
                                  batch=B, seed=args.seed, cameras=ep.camera).frames[:, :n], slice(0, n))}
    back = Rollout(model, np.ascontiguousarray(ep.frames[:, n:][:, ::-1]), config=cfg, seed=args.seed,
                   cameras=ep.camera).run(horizon=n)[:, ::-1]
    rows["rollout of the clip played backward, not told so"] = (np.ascontiguousarray(back), slice(0, n))
    if model.net.cfg.time_reversal:
        rows["forward rollout told it runs backward"] = (forward(True), slice(k, T))
    print(f"{args.model}: {B} windows of {k} given + {n} made frames from frame {args.start}, {args.steps} steps")
    print("| path | within 2 px | error (px) | lost |\n|---|---|---|---|")
    for name, (made, frames) in rows.items():
        r = centre_checks(made, ep, frames, colours, EXTEND_TOLERANCE_PX)
        print(f"| {name} | {np.nanmean(r['pass_rate']):.3f} | {np.nanmean(r['error_px']):.2f} | "
              f"{np.nanmean(r['missing']):.3f} |")


if __name__ == "__main__":
    main()

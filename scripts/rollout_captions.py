"""How much a model's rollouts lean on a caption: the same rollouts from fresh MuJoCo windows with no caption (as
`worldsim evaluate` rolls out), with the caption of the context frames alone (the objects, their sizes, masses,
places and velocities at the first context frame, and the events of the context: nothing of the future), and with
the whole window's caption (which also tells the events to come).

Prints each one's mean ball-centre error against MuJoCo (px, the colour parser's, over the 16 made frames; NaN
where a ball is not found, counted as lost) and at steps 1, 4, 8, 12 and 16, beside copy-last's. A manual probe
behind docs/experiments.md E99-E100, not a test.

    .venv/bin/python scripts/rollout_captions.py --model worldsim/pretrained/collide.safetensors --start 14
"""

from __future__ import annotations

import argparse

import numpy as np

from worldsim.eval.modes import episode_captions
from worldsim.eval.paired import fresh_episodes, windows
from worldsim.eval.parse import parse
from worldsim.rollout.autoregressive import RolloutConfig, rollout
from worldsim.rollout.model import WorldModel
from worldsim.sim.registry import get_scene

CONTEXT, HORIZON = 4, 16
STEPS = [0, 3, 7, 11, 15]  # steps 1, 4, 8, 12, 16


def centre_errors(frames: np.ndarray, truth: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(N, T, K) px between the parsed ball centres of `frames` (N, T, H, W, 3) and `truth` (N, T, K, 2)."""
    return np.linalg.norm(parse(frames, colours).centre - truth, axis=-1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--scene", default="collide")
    ap.add_argument("--start", type=int, default=0, help="episode frame of the first context frame")
    ap.add_argument("--episodes", type=int, default=32)
    ap.add_argument("--seed", type=int, default=5, help="fresh episodes' seed (evaluate's default is 0)")
    args = ap.parse_args()

    model = WorldModel.load(args.model)
    ep = fresh_episodes(args.scene, args.episodes, CONTEXT + HORIZON, start=args.start, seed=args.seed)
    colours = np.array([o.colour for o in get_scene(args.scene).spec.objects])
    truth = parse(ep.frames[:, CONTEXT:], colours).centre                                     # (N, 16, K, 2)
    told = {"none": None,
            "context caption": list(episode_captions(windows(ep, np.zeros(len(ep), int), CONTEXT), args.start,
                                                     window=True)),
            "window caption": list(episode_captions(ep, args.start, window=True))}
    params = list(ep.params) if model.net.cfg.param_dim else None
    print(f"{args.model}, {args.episodes} fresh {args.scene} windows from frame {args.start}")
    for name, text in told.items():
        made = rollout(model, ep.frames[:, :CONTEXT], None, HORIZON, config=RolloutConfig(), seed=0, params=params,
                       text=text)
        err = centre_errors(made, truth, colours)                                               # (N, 16, K)
        per_step = np.nanmean(err, axis=(0, 2))[STEPS]
        print(f"{name:16s} {np.nanmean(err):.2f} px, lost {np.isnan(err).mean():.3f} | steps 1/4/8/12/16: "
              + " ".join(f"{x:.2f}" for x in per_step))
    still = centre_errors(np.repeat(ep.frames[:, CONTEXT - 1:CONTEXT], HORIZON, 1), truth, colours)
    print(f"{'copy-last':16s} {np.nanmean(still):.2f} px | steps 1/4/8/12/16: "
          + " ".join(f"{x:.2f}" for x in np.nanmean(still, axis=(0, 2))[STEPS]))


if __name__ == "__main__":
    main()

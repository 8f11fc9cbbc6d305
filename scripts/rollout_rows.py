"""Rows of frames: one test episode from a store, then the rollout of each model and sampler from its first frames.

    .venv/bin/python scripts/rollout_rows.py --store data/bounce32.zarr --episode 0 \
        --model worldsim/pretrained/bounce.safetensors --sampler euler:3 --sampler euler:30 --out rows.png

Why: a figure for docs/experiments.md that shows what a model does with its context (E30: `bounce`'s balls break
into scattered pixels in the first predicted frame rather than fading), under several samplers, beside MuJoCo's
frames. A manual tool, not a test: it reads a recorded store and writes one PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from worldsim.data.store import open_store
from worldsim.rollout.autoregressive import RolloutConfig, rollout
from worldsim.rollout.model import WorldModel
from worldsim.viz.plots import clip_rows, png


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True)
    p.add_argument("--split", default="test")
    p.add_argument("--episode", type=int, default=0)
    p.add_argument("--context", type=int, default=4)
    p.add_argument("--horizon", type=int, default=8)
    p.add_argument("--model", action="append", required=True, help="a weights file; repeat for several")
    p.add_argument("--sampler", action="append", default=None, help="NAME:STEPS, e.g. euler:3; repeat for several")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    episode = open_store(args.store).episode(args.split, args.episode, arrays=["frames"])
    frames = episode["frames"][: args.context + args.horizon]
    rows = {"MuJoCo": frames}
    for path in args.model:
        model = WorldModel.load(path)
        label = Path(path).parent.name if Path(path).stem == "model" else Path(path).stem  # run folder or scene
        for spec in args.sampler or ["euler:3"]:
            name, steps = spec.split(":")
            made = rollout(model, frames[None, : args.context], horizon=args.horizon,
                           config=RolloutConfig(steps=int(steps), sampler=name))[0]
            rows[f"{label} {name} {steps}"] = np.concatenate([frames[: args.context], made])
    fig = clip_rows(rows, title=f"{args.store} {args.split} episode {args.episode}: {args.context} given frames, "
                                f"then each model's rollout")
    Path(args.out).write_bytes(png(fig))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""Where a model's text->video balls go in `collide`'s collision prompts, beside MuJoCo's.

For the collision prompts among adherence's fixed set (`worldsim.eval.adherence.PROMPTS`, seeds 0, 3, 6, 9 as
`worldsim evaluate --adherence` expands them) prints every third frame's ball columns (px) and the centres'
distance over the sum of their pixel radii (the collision check passes at <= `TOUCH_FACTOR`), for the model's
sample and for MuJoCo's video of the same parameters. `--rollout-after K` samples as
`generate(..., rollout_after=K)` does. A manual probe behind docs/experiments.md E90, not a test.

    .venv/bin/python scripts/collision_diag.py --model worldsim/pretrained/collide.safetensors --rollout-after 8
"""

from __future__ import annotations

import argparse

import numpy as np

from worldsim.eval import adherence
from worldsim.rollout.generate import generate
from worldsim.rollout.model import WorldModel
from worldsim.rollout.prompts import expand
from worldsim.sim.registry import get_scene

SEEDS = (0, 3, 6, 9)  # the prompt set's collision prompts (every third of `collide`'s cycled set)


def describe(name: str, r: dict) -> None:
    d = np.linalg.norm(r["centre"][:, 0] - r["centre"][:, 1], axis=-1) / (r["radius_px"][:, 0] + r["radius_px"][:, 1])
    print(f"  {name:6s} red x  {np.round(r['centre'][::3, 0, 0], 1)}")
    print(f"         blue x {np.round(r['centre'][::3, 1, 0], 1)}")
    print(f"         distance / radii {np.round(d[::3], 2)}, closest {np.nanmin(d):.2f} at frame {np.nanargmin(d)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--text-guidance", type=float, default=4.0, help="1: none")
    ap.add_argument("--steps", type=int, default=8, help="generate's default")
    ap.add_argument("--rollout-after", type=int, default=None,
                    help="default: the weights' own record (else the whole clip together)")
    a = ap.parse_args()
    model = WorldModel.load(a.model)
    spec = get_scene("collide").spec
    k, e = adherence._camera("collide", 32)
    for seed in SEEDS:
        text = adherence.PROMPTS["collide"][seed % len(adherence.PROMPTS["collide"])]
        x = expand(spec, text, seed=seed, frames=adherence.FRAMES)
        guidance = {"text": a.text_guidance} if a.text_guidance != 1 else None
        video = np.asarray(generate(model, "t2v", frames=adherence.FRAMES, resolution=(32, 32), seed=seed,
                                    caption=x.caption_for(model.scene.window_captions), params=[x.params],
                                    steps=a.steps, guidance=guidance,
                                    rollout_after=a.rollout_after).frames)[0]                 # (T, H, W, 3)
        print(f"prompt {seed} ({text!r}): MuJoCo's collision at frame "
              f"{[ev['frame'] for ev in x.events if ev['type'] == 'collision']}")
        describe("model", adherence.read(video, "collide", k, e))
        describe("mujoco", adherence.read(adherence.mujoco_video("collide", x.params), "collide", k, e))


if __name__ == "__main__":
    main()

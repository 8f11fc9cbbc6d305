"""Prompt adherence of text-only samples made two ways: the whole clip denoised together (`generate(mode="t2v")`,
what `worldsim evaluate --adherence` scores) or its first K frames so and the rest rolled out frame by frame under
the caption. The adherence prompt set of `collide`, each expanded with its own seed as the evaluation does.
A manual probe behind docs/experiments.md E81.

    .venv/bin/python scripts/t2v_rollout.py --model worldsim/pretrained/collide.safetensors --prompts 6 \
        --guidance-text 4 --modes whole,first1,first1s2
"""

from __future__ import annotations

import argparse

import numpy as np

from worldsim.eval import adherence
from worldsim.rollout import Rollout, RolloutConfig, WorldModel
from worldsim.rollout.generate import generate
from worldsim.rollout.prompts import expand
from worldsim.sim.registry import get_scene

SCENE, FRAMES, SIZE = "collide", 32, 32


def sample(model: WorldModel, mode: str, exp, seed: int, guidance: dict | None) -> np.ndarray:
    """(FRAMES, H, W, 3): `whole`, or `firstK[sS]` (K frames whole, then a rollout with S steps per frame)."""
    if mode == "whole":
        return generate(model, "t2v", frames=FRAMES, resolution=(SIZE, SIZE), seed=seed, caption=exp.caption,
                        params=[exp.params], guidance=guidance).frames[0]
    k, _, s = mode.removeprefix("first").partition("s")
    first = generate(model, "t2v", frames=int(k), resolution=(SIZE, SIZE), seed=seed, caption=exp.caption,
                     params=[exp.params], guidance=guidance).frames                         # (1, K, H, W, 3)
    r = Rollout(model, first, params=[exp.params], text=exp.caption,
                config=RolloutConfig(steps=int(s) if s else None, guidance=guidance or {}), seed=seed)
    return np.concatenate([first[0], np.stack([r.step()[0] for _ in range(FRAMES - int(k))])], 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--prompts", type=int, default=6)
    p.add_argument("--guidance-text", type=float, default=4.0)
    p.add_argument("--modes", default="whole,first1,first1s2")
    args = p.parse_args()
    model, spec = WorldModel.load(args.model), get_scene(SCENE).spec
    k, e = adherence._camera(SCENE, SIZE)
    texts = [adherence.PROMPTS[SCENE][i % len(adherence.PROMPTS[SCENE])] for i in range(args.prompts)]
    guidance = {"text": args.guidance_text} if args.guidance_text != 1.0 else None
    modes = args.modes.split(",")
    scores: dict[str, list[float]] = {m: [] for m in modes}
    for i, text in enumerate(texts):
        exp = expand(spec, text, seed=i, frames=FRAMES)
        for m in modes:
            scores[m].append(adherence.score(sample(model, m, exp, i, guidance), SCENE, exp, k, e))
        print(i, text, {m: round(scores[m][-1], 1) for m in modes}, flush=True)
    for m in modes:
        a = np.asarray(scores[m])
        print(f"{m}: {a.mean():.1f}% +- {1.96 * a.std(ddof=1) / np.sqrt(len(a)):.1f}")


if __name__ == "__main__":
    main()

"""Which of prompt adherence's checks a model's text->video samples fail, and how much of each ball they draw.

Samples `generate(model, "t2v")` for the scene's fixed prompts (`worldsim.eval.adherence.PROMPTS`, cycled, each
expanded with its own seed, as `worldsim evaluate --adherence N` does) and prints every check's failures with the
share of MuJoCo's ball pixels (the colour parser's) drawn per frame. `--text-guidance` sets classifier-free
guidance on the caption; `--rollout-after K` samples only the first K frames from text and rolls the rest out
(`--rollout-steps` Euler steps a frame, the weights' own by default; the caption, its guidance and the parameters
conditioning). `--tracks N` also prints each object's parsed centre (px) over the first N frames of every sample
beside MuJoCo's video of the same expansion (what showed E105's balls landing somewhere else each frame, E106).
`--stagger S` makes the text-made frames with the pyramid plan (`generate`'s `stagger`, E124); `--seed N` expands
prompt i with seed N + i (held-out expansions for choosing such settings). A manual probe behind
docs/experiments.md E72, E81, E106 and E124, not a test.

    .venv/bin/python scripts/adherence_checks.py --scene collide --model worldsim/pretrained/collide.safetensors
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from worldsim.diffusion.sampling import SAMPLERS
from worldsim.eval import adherence
from worldsim.eval.parse import parse
from worldsim.rollout.autoregressive import Rollout, RolloutConfig
from worldsim.rollout.generate import generate
from worldsim.rollout.model import WorldModel
from worldsim.rollout.prompts import expand
from worldsim.sim.registry import get_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", required=True, choices=sorted(adherence.PROMPTS))
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", type=int, default=12)
    ap.add_argument("--steps", type=int, default=8, help="generate's default")
    ap.add_argument("--sampler", default="euler", choices=sorted(SAMPLERS))
    ap.add_argument("--text-guidance", type=float, default=1.0, help="1: none")
    ap.add_argument("--rollout-after", type=int, default=0, help="0: the whole clip from text (generate's t2v)")
    ap.add_argument("--rollout-steps", type=int, default=None, help="the rollout's steps (default: the weights' own)")
    ap.add_argument("--stagger", type=int, default=None, help="the text-made frames' pyramid plan: frame j's noise "
                    "levels this many steps behind frame j - 1's (generate's `stagger`; 0: all together; default: "
                    "the weights' own)")
    ap.add_argument("--seed", type=int, default=0, help="prompt i is expanded and sampled with seed + i (`worldsim "
                    "evaluate --adherence` uses 0; another offset gives held-out expansions to choose settings on)")
    ap.add_argument("--tracks", type=int, default=0, help="print the objects' centres over this many first frames")
    a = ap.parse_args()
    model = WorldModel.load(a.model)
    spec = get_scene(a.scene).spec
    k, e = adherence._camera(a.scene, 32)
    colours = np.array([o.colour for o in spec.objects])
    names = [o.name for o in spec.objects]
    failed, asked, scores, drawn, real = Counter(), Counter(), [], [], []
    for i in range(a.seed, a.seed + a.prompts):
        text = adherence.PROMPTS[a.scene][i % len(adherence.PROMPTS[a.scene])]
        x = expand(spec, text, seed=i, frames=adherence.FRAMES)
        text_in = x.caption_for(model.scene.window_captions)  # the caption style the weights were trained on
        head = a.rollout_after or adherence.FRAMES
        guidance = {"text": a.text_guidance} if a.text_guidance != 1 else None
        g = generate(model, "t2v", frames=head, resolution=(32, 32), seed=i, caption=text_in,
                     params=[x.params], steps=a.steps, sampler=a.sampler, guidance=guidance,
                     rollout_after=head, stagger=a.stagger)  # rolled out below, whatever the weights record
        video = np.asarray(g.frames)[0]                                                     # (T, H, W, 3)
        if head < adherence.FRAMES:
            r = Rollout(model, video[None], text=text_in, params=[x.params], seed=i,
                        config=RolloutConfig(steps=a.rollout_steps, guidance=guidance or {}))
            video = np.concatenate([video, r.run(horizon=adherence.FRAMES - head)[0]])
        checks = adherence.checks(video, a.scene, x, k, e)
        truth = adherence.mujoco_video(a.scene, x.params)
        if a.tracks:
            print_tracks(text, checks, {"model": video, "mujoco": truth}, colours, names, a.tracks)
        scores.append(100 * np.mean(list(checks.values())))
        for name, ok in checks.items():
            asked[name] += 1
            failed[name] += not ok
        drawn.append(parse(video, colours).pixels)                                          # (T, K)
        real.append(parse(truth, colours).pixels)
    how = f", frames after {a.rollout_after} rolled out" if a.rollout_after else ""
    how += f", stagger {model.stagger if a.stagger is None else a.stagger}"
    print(f"{a.scene}: {a.steps} {a.sampler} steps, text guidance {a.text_guidance}{how}: "
          f"adherence {np.mean(scores):.1f}% over {a.prompts} prompts")
    for name in sorted(asked):
        print(f"  {name}: failed {failed[name]} of {asked[name]}")
    d, r = np.sum(drawn, axis=(0, 2)), np.sum(real, axis=(0, 2))                            # (T,)
    print("  ball pixels drawn / MuJoCo's at frames 1, 2, 5, 9, 17, 32:",
          [round(float(d[t] / max(r[t], 1)), 2) for t in (0, 1, 4, 8, 16, 31)])


def print_tracks(text: str, checks: dict, videos: dict, colours: np.ndarray, names: list[str], frames: int) -> None:
    """Each object's parsed centre (u, v px; '-' where not found) over the first `frames` frames of each video."""
    print(f"{text}: failed {[n for n, ok in checks.items() if not ok]}")
    for name, video in videos.items():
        p = parse(video[:frames], colours)
        for i in range(len(colours)):
            cells = [f"{x:4.1f},{y:4.1f}" if n >= 1 else "-" for (x, y), n in zip(p.centre[:, i], p.pixels[:, i])]
            print(f"  {name:6s} {names[i]:8s}: " + " ".join(cells))


if __name__ == "__main__":
    main()

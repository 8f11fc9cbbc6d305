"""Which SDEdit level should `preview` render its draft from? Asked of real frames: MuJoCo's 16-px frames of the
model's scene, nearest-upsampled and rendered at 32 px from each level, against MuJoCo's 32-px render of the same
states (with each episode's caption and, for weights conditioned on them, its scene parameters).

    .venv/bin/python scripts/render_levels.py --model worldsim/pretrained/occlusion.safetensors --episodes 32
    .venv/bin/python scripts/render_levels.py --model worldsim/pretrained/collide.safetensors --start 0

Prints, per level, the share of balls within 2 px of MuJoCo's, the share lost, their error and the PSNR to the real
full render. Seed 1: not the mode probe's windows (seed 0). Why: docs/experiments.md, E33. A manual tool, not a
test."""

from __future__ import annotations

import argparse

import numpy as np

from worldsim.eval.modes import EXTEND_TOLERANCE_PX, centre_checks, episode_captions
from worldsim.eval.paired import fresh_episodes
from worldsim.rollout import WorldModel, generate
from worldsim.sim.registry import get_scene


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--episodes", type=int, default=32)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--start", type=int, default=14)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--levels", type=float, nargs="+", default=[0.25, 0.5, 1.0, 2.0])
    p.add_argument("--keep", action="store_true", help="renders keep the 16-px frame as their 2x2 block means "
                   "(`generate`'s keep_scale, as `preview` renders since E87)")
    args = p.parse_args()
    model = WorldModel.load(args.model)
    scene = model.scene.name
    colours = np.array([o.colour for o in get_scene(scene).spec.objects])
    kw = dict(distribution="id", seed=1, start=args.start)
    full = fresh_episodes(scene, args.episodes, args.frames, resolution=32, **kw)
    low = fresh_episodes(scene, args.episodes, args.frames, resolution=16, **kw)
    up = np.repeat(np.repeat(low.frames, 2, 2), 2, 3)
    captions = list(episode_captions(full, args.start, window=model.scene.window_captions))

    def row(name: str, frames: np.ndarray) -> None:
        r = centre_checks(frames, full, slice(0, args.frames), colours, EXTEND_TOLERANCE_PX)
        psnr = 10 * np.log10(255**2 / ((frames.astype(np.float64) - full.frames) ** 2).mean())
        print(f"| {name} | {np.nanmean(r['pass_rate']):.3f} | {np.nanmean(r['missing']):.3f} | "
              f"{np.nanmean(r['error_px']):.2f} | {psnr:.1f} |")

    print("| render | within 2 px | lost | error (px) | PSNR (dB) |\n|---|---|---|---|---|")
    row("upsampled 16-px frame, no render", up)
    for sigma in args.levels:
        out = np.concatenate([generate(model, "edit", clip=up[s:s + args.batch], resolution=(32, 32),
                                       steps=args.steps, batch=len(up[s:s + args.batch]), seed=s,
                                       caption=captions[s:s + args.batch], sigma_start=sigma,
                                       params=list(full.params[s:s + args.batch]), cameras=full.camera,
                                       keep_scale=2 if args.keep else None).frames
                              for s in range(0, len(up), args.batch)])
        row(f"SDEdit from σ = {sigma:g}{', block means kept' if args.keep else ''}", out)


if __name__ == "__main__":
    main()

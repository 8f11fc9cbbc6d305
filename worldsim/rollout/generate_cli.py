"""`worldsim generate WEIGHTS MODE --out DIR`: one generation mode (worldsim/rollout/generate.py) from a prompt,
images or clips; writes the video and the raw frames. With `--prompt`, the prompt is expanded into a detailed caption
and scene parameters (worldsim/rollout/prompts.py), and `--simulate` also writes MuJoCo's video of the same
parameters beside the generated one.

    worldsim generate run/model.safetensors t2v --frames 16 --prompt "a red ball bounces off the left wall" --simulate --out out/
    worldsim generate run/model.safetensors extend_backward --clip clip.npz --frames 12 --out out/
    worldsim generate run/model.safetensors preview --frames 8 --resolution 64 --preview-resolution 32 --out out/
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np


def add_arguments(p: argparse.ArgumentParser) -> None:
    from worldsim.rollout.generate import MODES

    p.add_argument("weights")
    p.add_argument("mode", choices=MODES)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--prompt", default=None, help="a prompt in the scene's vocabulary (expanded to a caption)")
    p.add_argument("--caption", default=None, help="a caption used as is")
    p.add_argument("--image", default=None, help="i2v: an image file or .npz")
    p.add_argument("--clip", default=None, help="extend/edit: an .npz with `frames`")
    p.add_argument("--head", default=None, help="connect: the first clip (.npz)")
    p.add_argument("--tail", default=None, help="connect: the second clip (.npz)")
    p.add_argument("--cameras", default=None, help="one camera, or one per frame comma-separated (multi-shot)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--sampler", default="euler")
    p.add_argument("--guidance-text", type=float, default=1.0)
    p.add_argument("--guidance-actions", type=float, default=1.0)
    p.add_argument("--sigma-start", type=float, default=None,
                   help="edit/preview: SDEdit's starting noise level (default: edit 2.0, preview 1.0)")
    p.add_argument("--resolution", type=int, nargs="+", default=None)
    p.add_argument("--preview-resolution", type=int, nargs="+", default=None)
    p.add_argument("--preview-steps", type=int, default=None, help="preview: the draft's steps (default: 2 x --steps)")
    p.add_argument("--keep-draft", action=argparse.BooleanOptionalAction, default=True,
                   help="preview: the render keeps the draft as its block means (default), or renders it freely")
    p.add_argument("--keep-scale", type=int, nargs="+", default=None,
                   help="edit: keep the clip's block means over blocks of this many pixels (one or two numbers)")
    p.add_argument("--rollout-after", type=int, default=None,
                   help="t2v: denoise only the first K frames together and roll the rest out (default: the weights' "
                   "record, `worldsim export --rollout-after`, else the whole clip; K >= --frames: the whole clip)")
    p.add_argument("--stagger", type=int, default=None,
                   help="t2v: each frame denoised together settles S steps behind the one before (default: the "
                   "weights' record, `worldsim export --stagger`, else 0: all together)")
    p.add_argument("--simulate", action="store_true", help="with --prompt: MuJoCo's video of the same parameters")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="mp4", choices=("mp4", "gif"))
    p.add_argument("--no-progress", action="store_true")


def _hw(v):
    return None if v is None else (v[0] if len(v) == 1 else (v[0], v[1]))


def main(args: argparse.Namespace) -> int:
    from worldsim.errors import ConfigError
    from worldsim.rollout.generate import generate
    from worldsim.rollout.model import WorldModel
    from worldsim.rollout.outputs import read_clip, write_outputs

    model = WorldModel.load(args.weights)
    caption, params, expansion = args.caption, None, None
    if args.prompt is not None:
        if args.caption is not None:
            raise ConfigError("give --prompt or --caption, not both", field="--prompt")
        from worldsim.rollout.prompts import expand
        from worldsim.sim.registry import get_scene

        # argv holds undecodable bytes as surrogates: hand them back as bytes, which expand refuses as not UTF-8
        text = os.fsencode(args.prompt) if any("\udc80" <= ch <= "\udcff" for ch in args.prompt) else args.prompt
        expansion = expand(get_scene(model.scene.name).spec, text, seed=args.seed, frames=args.frames or None)
        caption, params = expansion.caption_for(model.scene.window_captions), expansion.params
        print(f"caption: {caption}")
        if model.net.cfg.text is None:
            print("note: these weights take no caption; conditioning on the prompt's parameters only")
            caption = None
    cams = None
    if args.cameras:
        parts = args.cameras.split(",")
        cams = parts[0] if len(parts) == 1 else parts
    clips = {k: read_clip(getattr(args, k), f"--{k}") for k in ("image", "clip", "head", "tail") if getattr(args, k)}
    if "image" in clips:
        clips["image"] = clips["image"].reshape(-1, *clips["image"].shape[-3:])[:1]
    g = generate(model, args.mode, frames=args.frames, resolution=_hw(args.resolution), steps=args.steps,
                 sampler=args.sampler, batch=args.batch, seed=args.seed, caption=caption, cameras=cams,
                 params=params if model.net.cfg.param_dim else None,
                 guidance={"text": args.guidance_text, "actions": args.guidance_actions},
                 sigma_start=args.sigma_start, preview_resolution=_hw(args.preview_resolution),
                 preview_steps=args.preview_steps, keep_draft=args.keep_draft, keep_scale=_hw(args.keep_scale),
                 rollout_after=args.rollout_after, stagger=args.stagger, progress=not args.no_progress, **clips)
    extra = {"given": g.given, "plan": g.plan.numpy()}
    if g.preview is not None:
        extra["preview"] = g.preview
    video = g.frames
    if args.simulate:
        if expansion is None:
            raise ConfigError("--simulate needs --prompt", field="--simulate")
        from worldsim.sim.scene_env import SceneEnv

        hw = (video.shape[2], video.shape[3])
        env = SceneEnv(model.scene.name, resolution=hw, camera=cams if isinstance(cams, str) else None)
        try:
            obs, _ = env.reset(seed=args.seed, options={"params": expansion.params})
            zero = np.zeros(env.action_space.shape, np.float32)
            sim = np.stack([obs] + [env.step(zero)[0] for _ in range(video.shape[1] - 1)])
        finally:
            env.close()
        extra["mujoco"] = sim
        video = np.concatenate([video, np.broadcast_to(sim, video.shape)], 3)  # generated left, MuJoCo right
    paths = write_outputs(args.out, args.mode, video, model.scene.fps, args.format, **extra)
    if caption:
        (args.out / f"{args.mode}.txt").write_text(caption + "\n")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0

"""`worldsim export CHECKPOINT --out WEIGHTS`: a run's checkpoint (any step, not only the end) as shareable
safetensors weights, EMA-averaged when the run kept an average; `--fp16` halves the file (the shipped models);
`--steps N` records the denoising steps per frame the weights sample with by default (chosen by evaluation), and
`--rollout-after K` that their text-to-video clips denoise the first K frames together and roll the rest out,
`--stagger S` that those frames settle S steps one behind another (`plans.pyramid`). A weights file in place of the
checkpoint is re-exported as it is but for `--steps`, `--rollout-after`, `--stagger` and `--fp16`.

    worldsim export runs/bounce/checkpoints/last.ckpt --out bounce.safetensors --fp16 --steps 2
    worldsim export collide.safetensors --out collide.safetensors --steps 2 --rollout-after 8
    worldsim export occlusion.safetensors --out occlusion.safetensors --stagger 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint (<run>/checkpoints/last.ckpt or best.ckpt), or a "
                   "weights file (.safetensors) to re-export with other --steps or --fp16")
    p.add_argument("--out", required=True, type=Path, help="the weights file to write (.safetensors)")
    p.add_argument("--fp16", action="store_true", help="store floating tensors at half precision")
    p.add_argument("--steps", type=int, default=None,
                   help="the weights' default denoising steps per frame (default: none recorded, so 3; a weights "
                   "file keeps its own)")
    p.add_argument("--rollout-after", type=int, default=None,
                   help="the weights' text-to-video default: denoise the first K frames together and roll the rest "
                   "out (default: none recorded, so whole clips; a weights file keeps its own)")
    p.add_argument("--stagger", type=int, default=None,
                   help="the weights' text-to-video default: each frame denoised together settles S steps behind "
                   "the one before (default: none recorded, so 0, all together; a weights file keeps its own)")


def main(args: argparse.Namespace) -> int:
    from worldsim.training.export import export_checkpoint, export_weights

    dtype = torch.float16 if args.fp16 else None
    export = export_weights if args.checkpoint.suffix == ".safetensors" else export_checkpoint
    path = export(args.checkpoint, args.out, dtype, sample_steps=args.steps, rollout_after=args.rollout_after,
                  stagger=args.stagger)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0

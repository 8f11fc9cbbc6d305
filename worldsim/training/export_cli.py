"""`worldsim export CHECKPOINT --out WEIGHTS`: a run's checkpoint (any step, not only the end) as shareable
safetensors weights, EMA-averaged when the run kept an average; `--fp16` halves the file (the shipped models).

    worldsim export runs/bounce/checkpoints/last.ckpt --out bounce.safetensors --fp16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="a run's checkpoint (<run>/checkpoints/last.ckpt or best.ckpt)")
    p.add_argument("--out", required=True, type=Path, help="the weights file to write (.safetensors)")
    p.add_argument("--fp16", action="store_true", help="store floating tensors at half precision")


def main(args: argparse.Namespace) -> int:
    from worldsim.training.export import export_checkpoint

    path = export_checkpoint(args.checkpoint, args.out, torch.float16 if args.fp16 else None)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0

"""How much a model's captions lower its denoising loss where a text-only sample is decided: every frame of a
clip at one noise level σ, scored with the clip's caption and with the text nulled, per σ.

64 windows of 8 frames from a store's train split (seed 0), captioned as the episode (what the shipped models were
trained on) and as the window itself (`data.window_captions`). A gain of 0 means the caption tells the model
nothing. A manual probe behind docs/experiments.md E75-E76; training logs the grid's figure as `val/text_gain`.

    .venv/bin/python scripts/text_gain.py --model worldsim/pretrained/collide.safetensors --store data/collide32.zarr
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from worldsim.diffusion.edm import per_frame
from worldsim.models.conditioning import Cond
from worldsim.rollout.model import WorldModel
from worldsim.training.data import WorldDataModule, collate

LEVELS = (0.5, 1.0, 2.0, 5.0, 10.0)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--clips", type=int, default=64)
    a = ap.parse_args()
    model = WorldModel.load(a.model)
    for window in (False, True):
        dm = WorldDataModule([a.store], windows=[8], val_batches=0, window_captions=window)
        dm.setup()
        ds, bucket = dm.train_dataloader().dataset, dm.train_buckets[0]
        picked = np.random.default_rng(0).integers(0, len(bucket.starts), a.clips)
        batch = collate([ds[(0, int(i))] for i in picked])
        x = batch["video"]                                                                  # (B, T, C, H, W)
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
        cond = Cond(params=batch["params"] if model.net.cfg.param_dim else None, camera_ids=batch["camera_ids"],
                    text=list(batch["caption"]))
        row = []
        for s in LEVELS:
            sigma = torch.full(x.shape[:2], s)
            xt = x + per_frame(sigma) * noise
            told = (model.denoiser(xt, sigma, cond) - x).pow(2).mean().item()
            blind = (model.denoiser(xt, sigma, cond.without("text")) - x).pow(2).mean().item()
            row.append(f"σ {s:g}: {told:.4f} / {blind:.4f} ({1 - told / blind:+.3f})")
        print("window captions" if window else "episode captions", "| MSE with / without text (gain):",
              " | ".join(row))


if __name__ == "__main__":
    main()

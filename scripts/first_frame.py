"""What a model's denoiser makes of a text-only first frame: MuJoCo's first frame of a prompt's expansion, noised to
each σ and denoised as a one-frame clip without context, with the caption and with the text nulled, as an image
(rows: prompts; columns: MuJoCo's frame, then per σ with / without the caption). A manual probe behind
docs/experiments.md E78, not a test.

    .venv/bin/python scripts/first_frame.py --model runs/collide_layout/model.safetensors --out runs/first_frame.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from PIL import Image

from worldsim.diffusion.edm import per_frame
from worldsim.eval import adherence
from worldsim.models.conditioning import Cond
from worldsim.rollout.model import WorldModel
from worldsim.rollout.prompts import expand
from worldsim.sim.registry import get_scene

LEVELS = (10.0, 5.0, 2.0, 1.0, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--scene", default="collide", choices=sorted(adherence.PROMPTS))
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    model, spec = WorldModel.load(a.model), get_scene(a.scene).spec
    texts = adherence.PROMPTS[a.scene]
    rows = []
    for i in range(a.prompts):
        x = expand(spec, texts[i % len(texts)], seed=i, frames=adherence.FRAMES)
        real = adherence.mujoco_video(a.scene, x.params, frames=1)                          # (1, H, W, 3)
        video = torch.from_numpy(real).permute(0, 3, 1, 2).float()[None] / 127.5 - 1         # (1, 1, C, H, W)
        noise = torch.randn(video.shape, generator=torch.Generator().manual_seed(i))
        row = [real[0]]
        for s in LEVELS:
            sigma = torch.full((1, 1), s)
            captioned = Cond(text=[x.caption_for(model.scene.window_captions)])
            for cond in (captioned, captioned.without("text")):
                with torch.no_grad():
                    d = model.denoiser(video + per_frame(sigma) * noise, sigma, cond)          # (1, 1, C, H, W)
                row.append(((d[0, 0].permute(1, 2, 0).clamp(-1, 1) + 1) * 127.5).round().byte().numpy())
        rows.append(np.concatenate(row, 1))
    img = np.concatenate(rows, 0)
    Image.fromarray(img).resize((img.shape[1] * 4, img.shape[0] * 4), Image.NEAREST).save(a.out)
    print(f"wrote {a.out}: columns MuJoCo, then σ {', '.join(map(str, LEVELS))} with / without the caption")


if __name__ == "__main__":
    main()

"""Does a rollout keep `bounce`'s balls if each new frame starts from the last one instead of from pure noise?

SDEdit's warm start for a rollout: every new frame is sampled from the previous frame noised to `sigma_start`
(`plans.edit`'s levels) instead of from noise at the plan's top level, so the ball of the last frame is in the
sampler's input from its first step. Rolls the model out 16 frames from the first 4 of each test episode and prints,
per start, the next-frame PSNR, the share of MuJoCo's ball pixels the model draws, how often a ball is missing, the
centre error of the balls it finds beside copy-last's on the same frames, and the balls' speed. A manual probe
behind docs/experiments.md E72, not a test.

    .venv/bin/python scripts/warm_start.py --model worldsim/pretrained/bounce.safetensors --store data/bounce32.zarr
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from worldsim.data.store import open_store
from worldsim.diffusion import plans
from worldsim.eval.metrics import psnr
from worldsim.eval.parse import parse
from worldsim.rollout.autoregressive import Rollout, RolloutConfig
from worldsim.rollout.model import WorldModel, to_model
from worldsim.sim.registry import get_scene


class WarmRollout(Rollout):
    """A rollout whose every new frame starts from the last frame plus noise at `sigma_start`."""

    def __init__(self, model: WorldModel, context, *, sigma_start: float, config: RolloutConfig):
        super().__init__(model, context, config=config)
        self._sigmas = plans.edit(config.steps, 1, sigma_start, cfg=model.edm)              # (steps + 1, 1)
        self._fresh = False

    def _noise(self, shape) -> torch.Tensor:
        z = super()._noise(shape)
        if self._fresh:  # the step's first draw is its start: shift it so that sigma * z becomes last + sigma * z
            self._fresh = False
            z = z + to_model(self.last[:, None]).to(z) / self._sigmas[0, 0]                 # (B, 1, C, H, W)
        return z

    def step(self, actions=None, camera=None) -> np.ndarray:
        self._fresh = True
        return super().step(actions, camera)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--store", required=True, help="a recorded store with a test split of >= 20-frame episodes")
    ap.add_argument("--scene", default="bounce")
    ap.add_argument("--starts", default="none:3,0.3:2,0.5:2,0.5:3,0.7:2,1.0:2,2.0:3",
                    help="comma-separated SIGMA:STEPS (none: the plain rollout from noise)")
    a = ap.parse_args()
    store = open_store(a.store)
    frames = np.stack([store.episode("test", int(i), ["frames"])["frames"][:20]
                       for i in store.committed("test")])                                    # (B, 20, H, W, 3)
    model = WorldModel.load(a.model)
    colours = np.array([o.colour for o in get_scene(a.scene).spec.objects])
    real = parse(frames[:, 4:20], colours)
    last = parse(frames[:, 3:4], colours).centre                                            # (B, 1, K, 2)
    found = real.pixels > 0                                                                 # (B, 16, K)
    for start in a.starts.split(","):
        sigma, steps = start.split(":")
        cfg = RolloutConfig(steps=int(steps))
        r = Rollout(model, frames[:, :4], config=cfg) if sigma == "none" else \
            WarmRollout(model, frames[:, :4], sigma_start=float(sigma), config=cfg)
        made = r.run(horizon=16)                                                            # (B, 16, H, W, 3)
        p = parse(made, colours)
        psnr1 = float(psnr(made[:, :1], frames[:, 4:5]).mean())                             # the evaluation's PSNR
        share = [float(np.mean(p.pixels[:, t][found[:, t]] / real.pixels[:, t][found[:, t]])) for t in range(16)]
        missing = [float(np.mean(p.pixels[:, t][found[:, t]] == 0)) for t in range(16)]
        d = np.linalg.norm(p.centre - real.centre, axis=-1)                                      # (B, 16, K)
        d_copy = np.where(np.isnan(d), np.nan, np.linalg.norm(last - real.centre, axis=-1))
        speed = np.nanmean(np.linalg.norm(np.diff(p.centre, axis=1), axis=-1))
        speed_real = np.nanmean(np.linalg.norm(np.diff(real.centre, axis=1), axis=-1))
        at = [0, 3, 7, 15]
        print(f"start {sigma:>4} steps {steps}: next-frame PSNR {psnr1:.2f} dB; ball pixels drawn at steps 1/4/8/16 "
              f"{[round(share[t], 2) for t in at]}, missing {[round(missing[t], 2) for t in at]} "
              f"(all {np.mean(missing):.2f}); centre error of found balls {np.round(np.nanmean(d[:, at], (0, 2)), 2)} "
              f"px (copy-last {np.round(np.nanmean(d_copy[:, at], (0, 2)), 2)}); speed {speed:.2f} px/frame "
              f"(MuJoCo {speed_real:.2f})", flush=True)


if __name__ == "__main__":
    main()

"""Where a `parabola` model's ball goes wrong, by axis: sideways (constant velocity) or up and down (gravity).

Rolls the model out 16 frames from the first 4 of each test episode of a recorded store and compares the ball's
centre (px, the evaluation's colour parser `worldsim.eval.parse`) in its frames with MuJoCo's: the first step's
displacement error per axis beside copy-last's and linear extrapolation's, the curvature of the ball's height over
frames 2-9 (px/frame^2; MuJoCo's is g in pixels), and the centre error by step. A manual diagnostic behind
docs/experiments.md E66-E68, not a test.

    .venv/bin/python scripts/parabola_axes.py --model worldsim/pretrained/parabola.safetensors
"""

from __future__ import annotations

import argparse

import numpy as np
import zarr

from worldsim.eval.parse import parse
from worldsim.rollout.autoregressive import RolloutConfig, rollout
from worldsim.rollout.model import WorldModel
from worldsim.sim.registry import get_scene


def centroids(frames: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """(B, T, H, W, 3) uint8 -> (B, T, 2) row, column of the ball's centre (NaN where it is not found)."""
    u, v = np.moveaxis(parse(frames, colour[None]).centre[..., 0, :], -1, 0)                  # (B, T) each
    return np.stack([v, u], -1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--store", default="data/parabola32.zarr")
    ap.add_argument("--split", default="test")
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    group = zarr.open_group(args.store, mode="r")[args.split]
    lengths = group["episode_length"][:]
    n, length = len(lengths), int(lengths[0])  # recorded stores hold equal-length episodes
    frames = group["frames"][:].reshape(n, length, *group["frames"].shape[1:])                 # (B, T, H, W, 3)
    world_model = WorldModel.load(args.model)
    colour = np.array(get_scene(world_model.scene.name).spec.objects[0].colour)
    made = rollout(world_model, frames[:, :4], horizon=16, config=RolloutConfig(steps=args.steps))
    real = centroids(frames[:, :20], colour)                                                  # (B, 20, 2)
    model = centroids(np.concatenate([frames[:, :4], made], 1), colour)
    step_true, step_model = real[:, 4] - real[:, 3], model[:, 4] - model[:, 3]
    print("first step's displacement error (row, column) px: model",
          np.nanmean(abs(step_model - step_true), 0).round(3), "copy-last", np.nanmean(abs(step_true), 0).round(3),
          "linear", np.nanmean(abs(step_true - (real[:, 3] - real[:, 2])), 0).round(3))
    t = np.arange(8)
    # frames 2-9 of a flight without a floor bounce (a bounce flips the row's velocity: a second difference < -0.6)
    flights = [e for e in range(n)
               if np.isfinite(real[e, 2:10, 0]).all() and (np.diff(real[e, 2:10, 0], 2) >= -0.6).all()]
    curve = lambda c, e: 2 * np.polyfit(t, c[e, 2:10, 0], 2)[0]  # noqa: E731
    mujoco, learned = np.mean([curve(real, e) for e in flights]), np.nanmean([curve(model, e) for e in flights])
    print(f"height curvature over frames 2-9 px/frame^2 ({len(flights)} episodes without a bounce there): "
          f"MuJoCo {mujoco:.3f}, model {learned:.3f}")
    error = np.linalg.norm(real[:, 4:] - model[:, 4:], axis=-1)                                # (B, 16)
    print("centre error by step (px):", np.nanmean(error, 0).round(2).tolist())


if __name__ == "__main__":
    main()

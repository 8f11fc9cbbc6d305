"""Where a `parabola` model's ball goes wrong, by axis: sideways (constant velocity) or up and down (gravity).

Rolls the model out 16 frames from the first 4 of each test episode of a recorded store and compares the ball's
centre (px, the evaluation's colour parser `worldsim.eval.parse`) in its frames with MuJoCo's: the first step's
displacement error per axis beside copy-last's and linear extrapolation's, the curvature of the ball's height over
frames 2-9 (px/frame^2; MuJoCo's is g in pixels), the centre error by step, and the curvature over the stretches
between MuJoCo's bounces (where the gravity probe fits g) with how often the model's first bounce lands on MuJoCo's
frame; last, how closely the model's speed over frames 3-8 follows MuJoCo's on each axis (the slope of one against
the other: 1 reads it from the context, 0 moves every ball alike) and the share of balls it sends the wrong way
sideways. `--mirror` flips the episodes left to right first (balls launched from the right: every recorded one
starts on the left). A manual diagnostic behind docs/experiments.md E66-E69 and E139-E142, not a test.

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
    ap.add_argument("--mirror", action="store_true", help="flip the episodes left to right")
    args = ap.parse_args()
    group = zarr.open_group(args.store, mode="r")[args.split]
    lengths = group["episode_length"][:]
    n, length = len(lengths), int(lengths[0])  # recorded stores hold equal-length episodes
    frames = group["frames"][:].reshape(n, length, *group["frames"].shape[1:])                 # (B, T, H, W, 3)
    if args.mirror:
        frames = np.ascontiguousarray(frames[:, :, :, ::-1])
    world_model = WorldModel.load(args.model)
    colour = np.array(get_scene(world_model.scene.name).spec.objects[0].colour)
    made = rollout(world_model, frames[:, :4], horizon=16, config=RolloutConfig(steps=args.steps))
    real = centroids(frames[:, :20], colour)                                                  # (B, 20, 2)
    model = centroids(np.concatenate([frames[:, :4], made], 1), colour)
    step_true, step_model = real[:, 4] - real[:, 3], model[:, 4] - model[:, 3]
    print("first step's displacement error (row, column) px: model",
          np.nanmean(abs(step_model - step_true), 0).round(3), "copy-last", np.nanmean(abs(step_true), 0).round(3),
          "linear", np.nanmean(abs(step_true - (real[:, 3] - real[:, 2])), 0).round(3))
    flights = [e for e in range(n) if np.isfinite(real[e, 2:10, 0]).all() and not bounces(real[e, 2:10, 0])]
    mujoco = np.mean([curvature(real[e, 2:10, 0]) for e in flights])
    learned = np.nanmean([curvature(model[e, 2:10, 0]) for e in flights])
    print(f"height curvature over frames 2-9 px/frame^2 ({len(flights)} episodes without a bounce there): "
          f"MuJoCo {mujoco:.3f}, model {learned:.3f}")
    error = np.linalg.norm(real[:, 4:] - model[:, 4:], axis=-1)                                # (B, 16)
    print("centre error by step (px):", np.nanmean(error, 0).round(2).tolist())
    stretches(real[:, 4:, 0], model[:, 4:, 0])
    speeds(real, model)


def curvature(row: np.ndarray) -> float:
    """Second derivative (px/frame^2) of the parabola fitted to a height series."""
    return float(2 * np.polyfit(np.arange(len(row)), row, 2)[0])


def bounces(row: np.ndarray) -> list[int]:
    """Frames of the floor bounces in a height series (image rows grow downward): those after which the row's
    velocity drops by more than 0.6 px/frame (from falling to rising)."""
    return (np.flatnonzero(np.diff(row, 2) < -0.6) + 1).tolist()


def stretches(real: np.ndarray, model: np.ndarray) -> None:
    """The gravity probe fits g over the stretches between MuJoCo's bounces, so a model that bounces on another frame
    puts its bounce inside a stretch and fits a negative g there. Prints the height's curvature over the first and
    the later stretches (rows (B, 16) each, the rollout's frames) and how often the first bounce lands on MuJoCo's."""
    fits: dict[str, list[tuple[float, float]]] = {"first": [], "later": []}
    same = near = bounced = 0
    lag: list[int] = []
    for r, m in zip(real, model):
        hits, made = bounces(r), bounces(m)
        cuts = sorted({0, len(r), *hits})
        for k, (a, z) in enumerate(zip(cuts[:-1], cuts[1:])):
            if z - a >= 6 and np.isfinite(r[a:z]).all() and np.isfinite(m[a:z]).all():  # the probe's 6 frames
                fits["first" if k == 0 else "later"].append((curvature(r[a:z]), curvature(m[a:z])))
        if hits:
            bounced += 1
            same += bool(made) and made[0] == hits[0]
            near += bool(made) and abs(made[0] - hits[0]) <= 1
            lag += [made[0] - hits[0]] if made else []
    for name, pairs in fits.items():
        if pairs:
            mujoco, learned = np.array(pairs).T
            print(f"height curvature, {name} stretch ({len(pairs)}): MuJoCo {mujoco.mean():.3f}, model "
                  f"{learned.mean():.3f} px/frame^2 (model / MuJoCo, median {np.median(learned / mujoco):.2f})")
    q25, q50, q75 = np.percentile(lag, [25, 50, 75]) if lag else (np.nan,) * 3
    print(f"first bounce in the rollout ({bounced} episodes): the model's on MuJoCo's frame in {same}, within one "
          f"frame in {near}; its frame minus MuJoCo's, median {q50:+.0f} (quartiles {q25:+.0f}, {q75:+.0f})")


def speeds(real: np.ndarray, model: np.ndarray, a: int = 3, b: int = 8) -> None:
    """Slope of the model's mean speed over frames a..b against MuJoCo's, per axis (tracks (B, T, 2) row, column),
    and the share of balls the model moves the other way sideways."""
    true, made = (real[:, b] - real[:, a]) / (b - a), (model[:, b] - model[:, a]) / (b - a)     # (B, 2) px/frame
    ok = np.isfinite(true).all(1) & np.isfinite(made).all(1)
    slope = [np.polyfit(true[ok, k], made[ok, k], 1)[0] for k in (1, 0)]
    wrong = np.mean(np.sign(made[ok, 1]) != np.sign(true[ok, 1]))
    print(f"speed over frames {a}-{b}, model against MuJoCo ({ok.sum()} episodes): slope sideways {slope[0]:.2f}, "
          f"up and down {slope[1]:.2f}; sent the wrong way sideways {wrong:.0%}")


if __name__ == "__main__":
    main()

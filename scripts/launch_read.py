"""How exactly four 32-px `parabola` frames show the launch, aliased and anti-aliased (docs/experiments.md E130).

Renders the same episodes with `supersample` 1 and 4, reads the ball's centre in the first four frames by alpha
weights (each pixel's share of the ball's colour against the episode's median frame), fits one linear map from
those eight numbers to the ball's true projected centre h frames later on two thirds of the episodes, and prints
its error on the rest: what a reader of the context frames alone can know about where the ball goes, before any
bounce. With `--noise`, the anti-aliased context frames are read again with Gaussian noise added at each level (of
the [-1, 1] frame, as training's `loss.context_sigma` shows them), each pixel's weight kept within 4 px of the ball
so that noise far from it does not count (E134). A manual diagnostic, not a test.

    .venv/bin/python scripts/launch_read.py --episodes 300
    .venv/bin/python scripts/launch_read.py --episodes 300 --noise 0.01,0.02,0.05,0.1
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np

from worldsim.sim.camera import project
from worldsim.sim.registry import get_scene
from worldsim.sim.scene import Scene
from worldsim.sim.scene_env import SceneEnv

CONTEXT = 4
HORIZONS = (4, 8, 12)
FRAMES = 20  # the evaluation's window (4 + 16); the median background is taken over it


def episodes(supersample: int, n: int, frames: int, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, T, H, W, 3) float frames and (n, T, 2) true projected (u, v) centres of the ball."""
    base = get_scene("parabola")
    env = SceneEnv(Scene(dataclasses.replace(base.spec, supersample=supersample)), resolution=resolution)
    video, centres = [], []
    for s in range(n):
        frame, info = env.reset(seed=1000 + s)
        fs, cs = [], []
        for t in range(frames):
            if t:
                frame, _, _, _, info = env.step(np.zeros(0, np.float32))
            fs.append(frame)
            cs.append(project(info["object_pos"][:1], info["intrinsics"], info["extrinsics"])[0])
        video.append(np.stack(fs))
        centres.append(np.stack(cs))
    env.close()
    return np.stack(video).astype(np.float64), np.stack(centres)


def alpha_centres(video: np.ndarray, colour: np.ndarray, background: np.ndarray | None = None,
                  near: np.ndarray | None = None) -> np.ndarray:
    """(n, T, H, W, 3) -> (n, T, 2) (u, v): centres weighted by each pixel's share of the ball's colour.

    `background` (n, 1, H, W, 3) defaults to the clip's median frame; `near` (n, T, 2) keeps only pixels within 4 px
    of those centres (for noisy frames, where noise everywhere else would be read as ball)."""
    if background is None:
        background = np.median(video, axis=1, keepdims=True)  # the camera is still: the ball covers a pixel briefly
    d = colour - background
    alpha = np.clip(((video - background) * d).sum(-1) / np.maximum((d * d).sum(-1), 1.0), 0.0, 1.0)
    h, w = alpha.shape[-2:]
    if near is None:
        alpha[alpha < 0.05] = 0.0
    else:
        rows, cols = np.mgrid[0:h, 0:w] + 0.5
        alpha *= (np.abs(cols - near[..., :1, None]) < 4) & (np.abs(rows - near[..., 1:, None]) < 4)
    n = alpha.sum((-1, -2))
    u = (alpha.sum(-2) * (np.arange(w) + 0.5)).sum(-1) / n
    v = (alpha.sum(-1) * (np.arange(h) + 0.5)).sum(-1) / n
    return np.stack([u, v], -1)


def linear_read(read: np.ndarray, truth: np.ndarray, h: int, split: int) -> np.ndarray:
    """Error (n_test, 2) of one linear map from the first CONTEXT centres to the true centre h frames later, fitted on
    the first `split` episodes and scored on the rest."""
    n = len(read)
    x = np.concatenate([read[:, :CONTEXT].reshape(n, -1), np.ones((n, 1))], 1)
    y = truth[:, CONTEXT - 1 + h]
    ok = np.isfinite(x).all(1) & np.isfinite(y).all(1)
    fit, test = np.flatnonzero(ok[:split]), split + np.flatnonzero(ok[split:])
    w = np.linalg.lstsq(x[fit], y[fit], rcond=None)[0]
    return x[test] @ w - y[test]


def noisy_reads(video: np.ndarray, truth: np.ndarray, colour: np.ndarray, sigmas: list[float], split: int) -> None:
    """Print the read's error with each level of Gaussian noise on the context frames (E134)."""
    background = np.median(video, axis=1, keepdims=True)
    rng = np.random.default_rng(0)
    for s in [0.0, *sigmas]:
        context = video[:, :CONTEXT] + rng.normal(size=video[:, :CONTEXT].shape) * s * 127.5  # [-1, 1] -> 0..255
        read = alpha_centres(context, colour, background, near=truth[:, :CONTEXT])
        row = [f"noise {s:g}: centre read {np.nanmean(np.linalg.norm(read - truth[:, :CONTEXT], axis=-1)):.3f} px"]
        row += [f"{h} frames on: {np.linalg.norm(linear_read(read, truth, h, split), axis=-1).mean():.3f} px"
                for h in HORIZONS[:2]]
        print(";  ".join(row))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=300)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--noise", type=lambda s: [float(v) for v in s.split(",")], default=None,
                    help="comma-separated noise levels: read the anti-aliased context frames with noise added")
    args = ap.parse_args()
    colour = np.array(get_scene("parabola").spec.objects[0].colour, dtype=np.float64)
    split = 2 * args.episodes // 3
    if args.noise is not None:
        video, truth = episodes(4, args.episodes, FRAMES, args.resolution)
        noisy_reads(video, truth, colour, args.noise, split)
        return
    for supersample in (1, 4):
        video, truth = episodes(supersample, args.episodes, FRAMES, args.resolution)
        read = alpha_centres(video, colour)
        row = [f"supersample {supersample}: centre read {np.nanmean(np.linalg.norm(read - truth, axis=-1)):.3f} px"]
        for h in HORIZONS:
            err = linear_read(read, truth, h, split)
            off, height = np.linalg.norm(err, axis=-1).mean(), np.abs(err[:, 1]).mean()
            row.append(f"{h} frames on: {off:.3f} px (height {height:.3f})")
        print(";  ".join(row))


if __name__ == "__main__":
    main()

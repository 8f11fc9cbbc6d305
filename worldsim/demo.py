"""`worldsim demo`: the README's main job on the built-in default scene.

For now it simulates one episode of the default scene from two cameras and writes them side by side to an
mp4; the end-to-end demo (record, roll out the shipped model, evaluate, report) grows here."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from worldsim.errors import ConfigError
from worldsim.sim.registry import get_scene, make
from worldsim.viz.video import write_video

DEFAULT_SCENE = "bounce"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scene", default=DEFAULT_SCENE, help="registered scene name (default: %(default)s)")
    p.add_argument("--frames", type=int, default=100, help="frames to simulate (default: %(default)s)")
    p.add_argument("--resolution", type=int, default=64, help="frame height and width in px (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("worldsim-demo"), help="output folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out folder")


def run(scene: str = DEFAULT_SCENE, frames: int = 100, resolution: int = 64, seed: int = 0,
        out: Path = Path("worldsim-demo"), overwrite: bool = False) -> Path:
    """Simulate `frames` frames of `scene` from its first two cameras; return the mp4's path."""
    out = Path(out)
    if frames <= 0:
        raise ConfigError(f"must be positive, got {frames}", field="--frames")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError("folder is not empty; pass --overwrite or choose another --out", source=out, field="--out")
    spec = get_scene(scene).spec
    views = []
    for camera in spec.cameras[:2]:
        env = make(scene, resolution=resolution, camera=camera, visibility=False)
        obs, _ = env.reset(seed=seed)
        action = np.zeros(env.action_space.shape, np.float32)
        clip = [obs]
        for _ in tqdm(range(frames - 1), desc=f"simulating {scene} ({camera})", unit="frame"):
            obs, *_ = env.step(action)
            clip.append(obs)
        fps = env.metadata["render_fps"]
        env.close()
        views.append(np.stack(clip))
    video = np.concatenate(views, axis=2)  # (T, H, 2W, 3): the cameras side by side
    return write_video(out / f"{scene}.mp4", video, fps=fps)


def main(args: argparse.Namespace) -> int:
    path = run(args.scene, args.frames, args.resolution, args.seed, args.out, args.overwrite)
    print(f"wrote {path.resolve()}")
    return 0

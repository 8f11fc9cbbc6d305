"""`worldsim bench scenes`: per scene at 64x64, env step+render frames/s (with everything `info` needs,
segmentation included) beside a bare `mujoco.Renderer` loop rendering the same images on the same model."""

from __future__ import annotations

import time

import numpy as np

from worldsim.bench.bare import BareLoop
from worldsim.bench.report import BenchReport
from worldsim.sim.registry import make, scene_names


def _env_fps(env, frames: int) -> float:
    env.reset(seed=0)
    action = np.zeros(env.action_space.shape, np.float32)
    t = time.perf_counter()
    for _ in range(frames):
        _, _, _, truncated, _ = env.step(action)
        if truncated:
            env.reset(seed=1)
    return frames / (time.perf_counter() - t)


def _bare_fps(env, frames: int) -> float:
    """The same physics steps and the same images, rendered by MuJoCo directly (worldsim/bench/bare.py)."""
    env.reset(seed=0)
    loop = BareLoop(env)
    t = time.perf_counter()
    for _ in range(frames):
        loop.frame()
    fps = frames / (time.perf_counter() - t)
    loop.close()
    return fps


def run(quick: bool = False, resolution: int = 64) -> BenchReport:
    report = BenchReport("scenes")
    frames = 50 if quick else 500
    for name in scene_names():
        env = make(name, resolution=resolution)
        bare = _bare_fps(env, frames)
        fps = _env_fps(env, frames)
        env.close()
        report.add(f"{name} env step+render {resolution}px", fps, "frames/s", "bare mujoco.Renderer loop", bare)
    report.notes.append("same model, same physics steps and images (colour, segmentation, objects-only segmentation)")
    return report

"""`worldsim bench scenes`: per scene at 64x64, env step+render frames/s (with everything `info` needs,
segmentation included) beside a bare `mujoco.Renderer` loop rendering the same images on the same model."""

from __future__ import annotations

import time

import mujoco
import numpy as np

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
    """The same physics steps and the same renders (colour, segmentation, one isolated segmentation per active
    object), called on MuJoCo directly with no worldsim code in the loop."""
    env.reset(seed=0)
    model, data = env.model, env.data
    renderer = mujoco.Renderer(model, env.height, env.width)
    cam = env.scene.camera_ids[env.camera]
    active = [ids.geoms for ids, a in zip(env.scene.objects, env._active) if a]
    alpha = model.geom_rgba[:, 3].copy()
    t = time.perf_counter()
    for _ in range(frames):
        mujoco.mj_step(model, data, nstep=env.frame_skip)
        renderer.disable_segmentation_rendering()
        renderer.update_scene(data, camera=cam)
        renderer.render()
        renderer.enable_segmentation_rendering()
        renderer.update_scene(data, camera=cam)
        renderer.render()
        for geoms in active:
            model.geom_rgba[:, 3] = 0.0
            model.geom_rgba[geoms, 3] = alpha[geoms]
            renderer.update_scene(data, camera=cam)
            renderer.render()
        model.geom_rgba[:, 3] = alpha
    fps = frames / (time.perf_counter() - t)
    renderer.close()
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
    report.notes.append("same model, same physics steps and renders (colour + segmentation + one isolated render per object)")
    return report

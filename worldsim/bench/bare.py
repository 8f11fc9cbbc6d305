"""The reference loop of the scene and record benchmarks: MuJoCo stepped and rendered directly, with no worldsim
code in the loop, producing the same images the env renders for a frame (colour, segmentation, and the
objects-only segmentation that gives unoccluded pixel counts; see worldsim/sim/render.py)."""

from __future__ import annotations

import mujoco
import numpy as np


class BareLoop:
    """`frame()` steps `frame_skip` physics steps and renders a frame's images on an env's own model and data."""

    def __init__(self, env):
        self.model, self.data, self.frame_skip = env.model, env.data, env.frame_skip
        self.renderer = mujoco.Renderer(env.model, env.height, env.width)
        self.camera = env.scene.camera_ids[env.camera]
        self.object_geoms = np.concatenate([ids.geoms for ids in env.scene.objects])

    def frame(self, step: bool = True) -> None:
        model, data, r, cam = self.model, self.data, self.renderer, self.camera
        if step:
            mujoco.mj_step(model, data, nstep=self.frame_skip)
        r.disable_segmentation_rendering()
        r.update_scene(data, camera=cam)
        r.render()
        r.enable_segmentation_rendering()
        r.update_scene(data, camera=cam)
        r.render()
        alpha = model.geom_rgba[:, 3].copy()
        model.geom_rgba[:, 3] = 0.0
        model.geom_rgba[self.object_geoms, 3] = alpha[self.object_geoms]
        r.update_scene(data, camera=cam)
        r.render()
        model.geom_rgba[:, 3] = alpha

    def close(self) -> None:
        self.renderer.close()

"""Rendering of one frame with everything the recorder and probes need: colour, segmentation, and each object's
pixel centroid and visible fraction."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import einops
import mujoco
import numpy as np

from worldsim.sim.scene import Scene


@dataclass
class Frame:
    rgb: np.ndarray  # (H, W, 3) uint8
    visible: np.ndarray  # (K,) visible pixels / pixels the object would cover with nothing in front of it
    centroid: np.ndarray  # (K, 2) mean (u, v) of the object's visible pixels, pixel centres at +0.5; NaN if none
    pixels: np.ndarray  # (K,) visible pixel count
    full: np.ndarray  # (K,) pixels the object would cover with nothing in front of it (0: out of view or inactive)


def touching(obj: np.ndarray) -> set[int]:
    """Objects whose pixels border another object's in an (H, W) object-index map (8-neighbourhood, -1 = none)."""
    out: set[int] = set()
    for a, b in ((obj[:, :-1], obj[:, 1:]), (obj[:-1], obj[1:]), (obj[:-1, :-1], obj[1:, 1:]),
                 (obj[:-1, 1:], obj[1:, :-1])):
        edge = (a >= 0) & (b >= 0) & (a != b)
        if edge.any():
            out.update(np.unique(a[edge]).tolist())
            out.update(np.unique(b[edge]).tolist())
    return out


class FrameRenderer:
    """Renders a scene's frames: colour, segmentation, and the pixels each object would cover unoccluded.

    The unoccluded counts come from one more segmentation render with only the objects shown (scenery hidden).
    That is exact for every object that borders no other object in it (an object partly in front of another
    always borders it); those that do, and active objects with no pixels there (out of view, or wholly behind
    another object), get an isolated render of their own.

    A scene with `supersample: N` renders colour N x N times larger and averages each N x N block: a small ball's
    edge pixels then carry its sub-pixel position instead of flipping between shapes. Segmentation (and so
    centroids and visible fractions) stays at the frame's own resolution, one object per pixel."""

    def __init__(self, scene: Scene, model: mujoco.MjModel, height: int, width: int):
        self.scene, self.model = scene, model
        self.height, self.width = height, width
        self.supersample = n = scene.spec.supersample
        if n * width > model.vis.global_.offwidth or n * height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(n * width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(n * height, model.vis.global_.offheight)
        self._renderer = mujoco.Renderer(model, height=height, width=width)
        self._colour = mujoco.Renderer(model, height=n * height, width=n * width) if n > 1 else self._renderer
        n_geom = model.ngeom
        # geom id -> object index (or -1) for turning a segmentation image into object masks
        self._geom_to_obj = np.full(n_geom + 1, -1, dtype=np.int64)
        for k, ids in enumerate(scene.objects):
            self._geom_to_obj[ids.geoms] = k
        self._object_geoms = np.flatnonzero(self._geom_to_obj[:n_geom] >= 0)
        self._cols = np.arange(width) + 0.5
        self._rows = np.arange(height) + 0.5

    def close(self) -> None:
        if self._colour is not None and self._colour is not self._renderer:
            self._colour.close()
        if self._renderer is not None:
            self._renderer.close()
        self._renderer = self._colour = None

    def _segment(self, data: mujoco.MjData, camera: int) -> np.ndarray:
        """(H, W) object index per pixel, -1 where no object is seen."""
        r = self._renderer
        r.update_scene(data, camera=camera)
        seg = r.render()  # (H, W, 2): geom id, object type
        ids = np.where(seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM), seg[..., 0], -1)
        return self._geom_to_obj[ids]

    def render(self, data: mujoco.MjData, camera: int, active: np.ndarray, visibility: bool = True,
               edit: Callable[[mujoco.MjModel, mujoco.MjData], AbstractContextManager] | None = None) -> Frame:
        """Render colour, then (with `visibility`) segmentation. `edit(model, data)` is a context manager that
        changes only what the colour render shows (an impossible event): the segmentation, and so centroids,
        visible fractions and events, still describe the physical state."""
        r, m = self._renderer, self.model
        c = self._colour
        c.disable_segmentation_rendering()
        with edit(m, data) if edit is not None else nullcontext():
            c.update_scene(data, camera=camera)
        rgb = c.render().copy()  # (nH, nW, 3)
        if self.supersample > 1:
            n = self.supersample
            rgb = einops.reduce(rgb.astype(np.float32), "(h a) (w b) c -> h w c", "mean", a=n, b=n)
            rgb = np.rint(rgb).astype(np.uint8)  # (H, W, 3)
        k = len(self.scene.objects)
        visible = np.zeros(k)
        centroid = np.full((k, 2), np.nan)
        pixels = np.zeros(k, dtype=np.int64)
        full = np.zeros(k, dtype=np.int64)
        if not visibility:
            return Frame(rgb, np.full(k, np.nan), centroid, pixels, full)
        r.enable_segmentation_rendering()
        try:
            obj = self._segment(data, camera)
            counts = np.bincount(obj.ravel() + 1, minlength=k + 1)[1:]
            pixels[:] = counts
            for i in np.flatnonzero(counts):
                mask = obj == i
                centroid[i] = (self._cols @ mask.sum(0) / counts[i], self._rows @ mask.sum(1) / counts[i])
            alpha = m.geom_rgba[:, 3].copy()
            try:
                m.geom_rgba[:, 3] = 0.0
                m.geom_rgba[self._object_geoms, 3] = alpha[self._object_geoms]
                alone = self._segment(data, camera)  # objects only
                full[:] = np.bincount(alone.ravel() + 1, minlength=k + 1)[1:]
                redo = touching(alone) | {int(i) for i in np.flatnonzero(active & (full == 0))}
                for i in sorted(redo):
                    geoms = self.scene.objects[i].geoms
                    m.geom_rgba[:, 3] = 0.0
                    m.geom_rgba[geoms, 3] = alpha[geoms]
                    full[i] = int((self._segment(data, camera) == i).sum())
            finally:
                m.geom_rgba[:, 3] = alpha
            full[~active] = 0
            visible[:] = np.where(full > 0, counts / np.maximum(full, 1), 0.0)
        finally:
            r.disable_segmentation_rendering()
        return Frame(rgb, visible, centroid, pixels, full)

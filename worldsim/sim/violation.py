"""Impossible variants of an occlusion episode, for violation-of-expectation probes (IntPhys-style).

A variant is requested with `env.reset(seed=..., options={"violation": KIND})`, KIND one of `VIOLATIONS`. The
physics of a variant is its possible twin's, step for step: only what the *colour* frames show changes, from the
violation frame on. So the twin and the variant are bit-equal before that frame, and `info` (positions,
centroids, visible fractions from the segmentation of the physical state) and the events, hence the caption, are
the same for both — the caption says what should happen; the frames show what does.

The violation frame is the first frame at which the occluder's `object` has crossed the occluder's centre line
(x of the occluder), i.e. the middle of its passage behind the occluder, where it is hidden. From that frame on:

| kind       | what the frames show                                                                   |
|------------|----------------------------------------------------------------------------------------|
| `vanish`   | the object is gone (it never re-emerges)                                               |
| `teleport` | the object is drawn `occluder.teleport` metres further along its motion (it re-emerges early, or jumps) |
| `recolour` | the object has the colour `occluder.recolour` (it re-emerges in another colour)        |
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import mujoco
import numpy as np

from worldsim.errors import SceneError
from worldsim.sim.scene import Scene

VIOLATIONS = ("none", "vanish", "teleport", "recolour")


class Violation:
    """Tracks one episode's violation frame and edits the colour render from it on."""

    def __init__(self, scene: Scene, kind: str):
        if scene.spec.occluder is None:
            raise SceneError(f"scene {scene.spec.name!r} has no occluder, so no impossible variants",
                             source=scene.spec.source, field="options.violation")
        if kind not in VIOLATIONS:
            raise SceneError(f"unknown violation {kind!r}; expected one of {list(VIOLATIONS)}", field="options.violation")
        self.scene, self.kind = scene, kind
        self.k = scene.occluder_object
        self.ids = scene.objects[self.k]
        self.frame = -1  # the violation frame, once reached
        self._side = 0.0
        self._offset = np.zeros(3)

    def start(self, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        """Call after reset: remember on which side of the occluder's centre line the object starts."""
        self._side = np.sign(self._dx(data))

    def update(self, frame: int, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        """Call after each frame's physics: fixes the violation frame when the object crosses the centre line."""
        if self.frame < 0 and self._side != 0 and np.sign(self._dx(data)) != self._side:
            self.frame = frame
            vel = np.zeros(6)
            mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_BODY, self.ids.body, vel, 0)
            speed = np.linalg.norm(vel[3:])
            direction = vel[3:] / speed if speed > 0 else np.array([self._side * -1.0, 0.0, 0.0])
            self._offset = self.scene.spec.occluder.teleport * direction

    def _dx(self, data: mujoco.MjData) -> float:
        return float(data.xpos[self.ids.body, 0] - data.geom_xpos[self.scene.occluder_geom, 0])

    @property
    def active(self) -> bool:
        return self.kind != "none" and self.frame >= 0

    @contextmanager
    def edit(self, model: mujoco.MjModel, data: mujoco.MjData) -> Iterator[None]:
        """What the colour render shows instead of the physical state (see the module docstring)."""
        if not self.active:
            yield
            return
        geoms = self.ids.geoms
        rgba, xpos = model.geom_rgba[geoms].copy(), data.geom_xpos[geoms].copy()
        try:
            if self.kind == "vanish":
                model.geom_rgba[geoms, 3] = 0.0
            elif self.kind == "recolour":
                model.geom_rgba[geoms, :3] = np.array(self.scene.spec.occluder.recolour) / 255.0
            elif self.kind == "teleport":
                data.geom_xpos[geoms] += self._offset
            yield
        finally:
            model.geom_rgba[geoms], data.geom_xpos[geoms] = rgba, xpos

"""A loaded scene: its spec, its compiled MuJoCo model, ids looked up once by name, and the code that draws
an episode's quantities and applies them to a model and state."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import mujoco
import numpy as np

from worldsim.errors import SceneError, text_position
from worldsim.sim.spec import MIN_COLOUR_DISTANCE, MOTION_PLANES, SceneSpec, colour_distance, load_spec

BACKGROUND_RGB = (0, 0, 0)  # MuJoCo's empty background without a skybox


@dataclass
class ObjectIds:
    """MuJoCo ids of one object: its body, its geoms, and the qpos/qvel address of each world axis it moves on."""

    body: int
    geoms: np.ndarray
    qpos_axes: dict[int, int]  # world axis (0=x, 1=y, 2=z) -> qpos address
    qvel_axes: dict[int, int]
    free: bool


def active_objects(spec: SceneSpec, params: dict) -> np.ndarray:
    """(K,) bool: the objects taking part in an episode: all required ones, then optional ones in spec order up
    to the `count` quantity."""
    count = int(params.get("count", len(spec.objects)))
    required = np.array([not o.optional for o in spec.objects])
    order = np.cumsum(~required) + required.sum()
    return required | (order <= count)


def _compile(spec: SceneSpec) -> mujoco.MjModel:
    try:
        model = mujoco.MjModel.from_xml_path(str(spec.mjcf))
    except (ValueError, Exception) as e:  # mujoco raises ValueError with the parser's line and column
        raise SceneError(f"MJCF does not compile: {' '.join(str(e).split())}", source=spec.mjcf,
                         field=text_position(e)) from None
    # Shadows cost ~40x on a software renderer and add nothing a model needs: switch them off before any render.
    model.light_castshadow[:] = 0
    model.vis.quality.offsamples = 0
    return model


class Scene:
    """A scene spec plus its compiled model. Cheap to share; envs copy the model before changing it."""

    def __init__(self, spec: SceneSpec):
        self.spec = spec
        self.model = _compile(spec)
        m = self.model
        self.camera_ids = {}
        for i, cam in enumerate(spec.cameras):
            cid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_CAMERA, cam)
            if cid < 0:
                raise SceneError(f"camera {cam!r} is not in {spec.mjcf.name}", source=spec.source, field=f"cameras[{i}]")
            self.camera_ids[cam] = cid
        self.objects: list[ObjectIds] = []
        for i, o in enumerate(spec.objects):
            bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, o.body)
            if bid < 0:
                raise SceneError(f"body {o.body!r} is not in {spec.mjcf.name}", source=spec.source, field=f"objects[{i}].body")
            geoms = np.flatnonzero(m.geom_bodyid == bid)
            if geoms.size == 0:
                raise SceneError(f"body {o.body!r} has no geom to render", source=spec.source, field=f"objects[{i}].body")
            qpos_axes, qvel_axes, free = {}, {}, False
            for j in np.flatnonzero(m.jnt_bodyid == bid):
                jt = m.jnt_type[j]
                if jt == mujoco.mjtJoint.mjJNT_FREE:
                    free = True
                    for ax in range(3):
                        qpos_axes[ax] = m.jnt_qposadr[j] + ax
                        qvel_axes[ax] = m.jnt_dofadr[j] + ax
                elif jt == mujoco.mjtJoint.mjJNT_SLIDE:
                    axis = np.abs(m.jnt_axis[j])
                    ax = int(np.argmax(axis))
                    if not np.isclose(axis[ax], 1.0):
                        raise SceneError(f"slide joint of {o.body!r} is not along a world axis",
                                         source=spec.mjcf, field=f"body {o.body} joint {j}")
                    qpos_axes[ax], qvel_axes[ax] = m.jnt_qposadr[j], m.jnt_dofadr[j]
            self.objects.append(ObjectIds(bid, geoms, qpos_axes, qvel_axes, free))
        self._check_colours()
        self.goal_site = None
        if spec.reward is not None:
            self.goal_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, spec.reward.goal)
            if self.goal_site < 0:
                raise SceneError(f"site {spec.reward.goal!r} is not in {spec.mjcf.name}", source=spec.source, field="reward.goal")
        if spec.actions.kind == "actuators" and m.nu == 0:
            raise SceneError("actions.kind is `actuators` but the MJCF has no actuator", source=spec.source, field="actions.kind")
        if spec.actions.kind == "none" and m.nu > 0:
            raise SceneError("the MJCF has actuators: set actions.kind to `actuators`", source=spec.source, field="actions.kind")
        self.object_geom_set = set(np.concatenate([o.geoms for o in self.objects]).tolist())
        self.occluder_geom = None
        if spec.occluder is not None:
            self.occluder_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, spec.occluder.geom)
            if self.occluder_geom < 0:
                raise SceneError(f"geom {spec.occluder.geom!r} is not in {spec.mjcf.name}", source=spec.source, field="occluder.geom")
            self.occluder_object = [o.name for o in spec.objects].index(spec.occluder.object)
        # quantity kind -> the names of the quantities of that kind (several per-object ones may share a kind)
        self._by_kind: dict[str, list[str]] = {}
        for qname, q in spec.quantities.items():
            self._by_kind.setdefault(q.kind, []).append(qname)

    def _check_colours(self) -> None:
        """Objects must differ in colour from every piece of scenery and the background, or pixels lie."""
        m, spec = self.model, self.spec
        object_geoms = {int(g) for o in self.objects for g in o.geoms}
        scenery = [(BACKGROUND_RGB, "the background")]
        for g in range(m.ngeom):
            if g in object_geoms or m.geom_rgba[g, 3] == 0:
                continue
            rgba = m.mat_rgba[m.geom_matid[g]] if m.geom_matid[g] >= 0 else m.geom_rgba[g]
            name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom {g}"
            scenery.append((tuple(255.0 * rgba[:3]), f"scenery geom {name!r}"))
        for st in range(m.nsite):  # sites in the rendered groups (0-2) show up too: a goal region, a marker
            if m.site_rgba[st, 3] > 0 and m.site_group[st] < 3:
                name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_SITE, st) or f"site {st}"
                scenery.append((tuple(255.0 * m.site_rgba[st, :3]), f"site {name!r}"))
        coloured = [(o.name, o.colour, f"objects[{i}].colour") for i, o in enumerate(spec.objects)]
        if spec.occluder is not None:  # the impossible twin's colour must be told apart too
            coloured.append((f"{spec.occluder.object} recoloured", spec.occluder.recolour, "occluder.recolour"))
        for name, colour, fld in coloured:
            for rgb, what in scenery:
                if colour_distance(colour, rgb) < MIN_COLOUR_DISTANCE:
                    raise SceneError(f"{name} {list(colour)} is too close to {what} {[round(c) for c in rgb]} "
                                     f"(distance < {MIN_COLOUR_DISTANCE:.0f})", source=spec.source, field=fld)

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def fps(self, frame_skip: int | None = None) -> float:
        return 1.0 / (self.timestep * (frame_skip or self.spec.frame_skip))

    # --- drawing an episode -------------------------------------------------------------------------------

    def sample(self, rng: np.random.Generator, distribution: str = "id") -> dict[str, float | list[float]]:
        """Draw one episode's quantities. `distribution`: `id`, `ood` (every quantity with an ood range goes out
        of distribution) or `ood:NAME` (only that quantity). Per-object quantities are drawn for every object."""
        spec = self.spec
        ood_names = set()
        if distribution == "ood":
            ood_names = {n for n, q in spec.quantities.items() if q.ood}
        elif distribution.startswith("ood:"):
            name = distribution[4:]
            if name not in spec.quantities or not spec.quantities[name].ood:
                with_ood = sorted(n for n, q in spec.quantities.items() if q.ood)
                raise SceneError(f"no out-of-distribution range for {name!r}; quantities with one: {with_ood}",
                                 source=spec.source, field="distribution")
            ood_names = {name}
        elif distribution != "id":
            raise SceneError(f"unknown distribution {distribution!r}; expected id, ood or ood:NAME",
                             source=spec.source, field="distribution")
        params: dict[str, float | list[float]] = {}
        for name, q in spec.quantities.items():
            targets = [q.objects is None or o.name in q.objects for o in spec.objects] if q.per_object else [True]
            vals: list[float | None] = []
            for applies in targets:
                if not applies:
                    vals.append(None)
                elif q.mode == "fixed":
                    vals.append(q.value)
                else:
                    ranges = q.ood if name in ood_names else (q.id,)
                    lo, hi = ranges[int(rng.integers(len(ranges)))] if len(ranges) > 1 else ranges[0]
                    vals.append(float(rng.integers(int(lo), int(hi) + 1)) if q.kind == "count" else float(rng.uniform(lo, hi)))
            params[name] = vals if q.per_object else vals[0]
        return params

    def active(self, params: dict) -> np.ndarray:
        """Which objects take part: all required ones, then optional ones in spec order up to `count`."""
        return active_objects(self.spec, params)

    def apply(self, model: mujoco.MjModel, data: mujoco.MjData, params: dict, rng: np.random.Generator,
              pristine: mujoco.MjModel) -> None:
        """Write an episode's quantities into `model` (restored from `pristine` first) and the initial state."""
        spec = self.spec
        for fld in ("geom_size", "geom_rbound", "geom_aabb", "geom_rgba", "geom_contype", "geom_conaffinity",
                    "body_mass", "body_inertia", "site_pos"):
            getattr(model, fld)[:] = getattr(pristine, fld)
        model.opt.gravity[:] = pristine.opt.gravity
        mujoco.mj_resetData(model, data)
        active = self.active(params)
        per_object = partial(self.value, params)

        gravity = self.scene_value(params, "gravity")
        if gravity is not None:
            model.opt.gravity[:] = (0.0, 0.0, -float(gravity))
        for kind, ax in (("goal_x", 0), ("goal_y", 1)):
            v = self.scene_value(params, kind)
            if v is not None:  # the goal site hangs off the world body, so its model position is its world position
                model.site_pos[self.goal_site, ax] = v
        width = self.scene_value(params, "occluder_width")
        if width is not None:
            g = self.occluder_geom  # a box: its x half-size is half the width
            model.geom_size[g, 0] = 0.5 * width
            model.geom_rbound[g] = float(np.linalg.norm(model.geom_size[g]))
            model.geom_aabb[g, 3] = 0.5 * width
        for i, (o, ids) in enumerate(zip(spec.objects, self.objects)):
            model.geom_rgba[ids.geoms] = (*(c / 255.0 for c in o.colour), 1.0)
            if not active[i]:
                # An inactive object is hidden (alpha 0 drops it from colour and segmentation renders),
                # collides with nothing, and is held still against gravity by an applied force (body_gravcomp
                # would need the MJCF to declare it, since MuJoCo decides at compile time whether to apply it).
                model.geom_rgba[ids.geoms, 3] = 0.0
                model.geom_contype[ids.geoms] = 0
                model.geom_conaffinity[ids.geoms] = 0
                continue
            r = per_object("radius", i)
            if r is not None:
                g = ids.geoms[0]
                scale = r / pristine.geom_size[g, 0]
                model.geom_size[g] = pristine.geom_size[g] * scale
                model.geom_rbound[g] = pristine.geom_rbound[g] * scale
                model.geom_aabb[g] = pristine.geom_aabb[g] * scale
                model.body_mass[ids.body] = pristine.body_mass[ids.body] * scale**3
                model.body_inertia[ids.body] = pristine.body_inertia[ids.body] * scale**5
            mass = per_object("mass", i)
            if mass is not None:
                ratio = mass / model.body_mass[ids.body]
                model.body_mass[ids.body] *= ratio
                model.body_inertia[ids.body] *= ratio
        # MuJoCo caches the mass matrix of "simple" bodies (dof_M0) and the constraint weights at compile time:
        # without recomputing them, a changed mass would be drawn and reported but not simulated.
        mujoco.mj_setConst(model, data)
        mujoco.mj_resetData(model, data)
        mujoco.mj_forward(model, data)
        for i, ids in enumerate(self.objects):
            if not active[i]:
                data.xfrc_applied[ids.body, :3] = -model.opt.gravity * model.body_subtreemass[ids.body]
        self._place(model, data, params, active, rng)

    def _place(self, model, data, params, active, rng) -> None:
        """Set initial positions (re-drawing overlapping ones from the same quantities' ranges) and velocities."""
        spec = self.spec
        axes = {"x": 0, "y": 1, "z": 2}
        placed: list[tuple[np.ndarray, float]] = []
        plane = MOTION_PLANES[spec.motion_plane]
        for i, ids in enumerate(self.objects):
            if not active[i]:
                continue
            radius = float(model.geom_rbound[ids.geoms].max())
            target = data.xpos[ids.body].copy()
            drawn = {ax: q for n, ax in axes.items() if (q := self.quantity_of(params, n, i)) is not None}
            for ax, qname in drawn.items():
                target[ax] = params[qname][i]
            for _ in range(100):  # overlaps are re-drawn from the id ranges of the position quantities
                if all(np.linalg.norm(target - p) > radius + r + 0.01 for p, r in placed):
                    break
                for ax, qname in drawn.items():
                    if spec.quantities[qname].mode != "fixed":
                        lo, hi = spec.quantities[qname].id
                        target[ax] = rng.uniform(lo, hi)
            else:
                raise SceneError("could not place objects without overlap in 100 tries; widen the position ranges",
                                 source=spec.source, field="quantities")
            for ax, qname in drawn.items():
                params[qname][i] = float(target[ax])
            placed.append((target, radius))
            offset = target - data.xpos[ids.body]
            for ax, adr in ids.qpos_axes.items():
                data.qpos[adr] += offset[ax]
            speed, angle = self.value(params, "speed", i), self.value(params, "angle", i)
            if speed is not None:
                a = math.radians(angle or 0.0)
                vel = np.zeros(3)
                vel[plane[0]], vel[plane[1]] = speed * math.cos(a), speed * math.sin(a)
                for ax, adr in ids.qvel_axes.items():
                    data.qvel[adr] = vel[ax]
        mujoco.mj_forward(model, data)

    def gravity_on(self, i: int, gravity: np.ndarray) -> np.ndarray:
        """The part of `gravity` (3,) m/s^2 that moves object i: its components along the world axes the object
        translates on (a ball on an x slide, as `occlusion`'s, feels none; a free body all of it)."""
        felt = np.zeros(3)
        axes = list(self.objects[i].qpos_axes)
        felt[axes] = np.asarray(gravity, float)[axes]
        return felt

    def quantity_of(self, params: dict, kind: str, i: int) -> str | None:
        """The name of the quantity of `kind` that applies to object i, or None where none does."""
        for qname in self._by_kind.get(kind, ()):
            if qname in params and params[qname][i] is not None:
                return qname
        return None

    def value(self, params: dict, kind: str, i: int) -> float | None:
        """Object i's value of a per-object quantity kind, or None where the scene has none for it."""
        qname = self.quantity_of(params, kind, i)
        return None if qname is None else float(params[qname][i])

    def scene_value(self, params: dict, kind: str) -> float | None:
        """The value of a scene-level quantity kind (gravity, goal_x, ...), or None where the scene has none."""
        names = self._by_kind.get(kind, ())
        return float(params[names[0]]) if names and names[0] in params else None


def load_scene(path: str | Path) -> Scene:
    """Load a scene from a spec YAML file, or a folder holding `spec.yaml`."""
    path = Path(path)
    if path.is_dir():
        path = path / "spec.yaml"
    return Scene(load_spec(path))

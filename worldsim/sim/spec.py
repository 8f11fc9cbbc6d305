"""The scene spec: a small YAML file beside an MJCF that says what the scene's objects, randomised
quantities, cameras, actions and reward are. Parsed strictly: an unknown key or a bad value is an error
that names the file and the field. The format is documented in docs/scenes.md."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from worldsim.errors import SceneError, text_position

# Quantities a scene can randomise, and what each means (units in docs/scenes.md).
OBSERVABLE_KINDS = {"count", "radius", "x", "y", "z", "speed", "angle", "goal_x", "goal_y", "occluder_width"}
# Quantities the pixels cannot show: each must be declared `fixed` or `conditioned`, never silently random.
HIDDEN_KINDS = {"mass", "gravity"}
PER_OBJECT_KINDS = {"radius", "x", "y", "z", "speed", "angle", "mass"}
MOTION_PLANES = {"xz": (0, 2), "xy": (0, 1)}
MIN_COLOUR_DISTANCE = 80.0  # Euclidean distance in 0-255 RGB; objects are told apart from pixels by colour
MAX_SUPERSAMPLE = 8  # 64 colour samples per pixel is far past what a box filter gains from more


@dataclass(frozen=True)
class ObjectSpec:
    """One object the scene tracks: its MJCF body, its colour (which the env paints on) and shape."""

    name: str
    body: str
    colour: tuple[int, int, int]
    colour_name: str
    shape: str = "sphere"
    optional: bool = False


@dataclass(frozen=True)
class QuantitySpec:
    """A randomised or declared quantity.

    mode: `random` (drawn from `id` or `ood` ranges; observable kinds only), `fixed` (always `value`) or
    `conditioned` (drawn like random, and handed to the model as a parameter, since pixels cannot show it).
    """

    kind: str
    mode: str
    id: tuple[float, float] | None = None
    ood: tuple[tuple[float, float], ...] = ()
    value: float | None = None
    objects: tuple[str, ...] | None = None  # per-object kinds: the objects it applies to (None: all)

    @property
    def per_object(self) -> bool:
        return self.kind in PER_OBJECT_KINDS

    def in_distribution(self, v: float) -> bool:
        lo, hi = self.id if self.id is not None else (self.value, self.value)
        return lo - 1e-9 <= v <= hi + 1e-9


@dataclass(frozen=True)
class ActionSpec:
    """`none`: the scene runs on its own (an empty Box action). `actuators`: the MJCF actuators, bounded by ctrlrange."""

    kind: str = "none"


@dataclass(frozen=True)
class RewardSpec:
    """`goal_distance`: reward is minus the distance from `object` to the site `goal`; success within `success_radius`."""

    kind: str
    object: str
    goal: str
    success_radius: float


@dataclass(frozen=True)
class OccluderSpec:
    """An occluding geom that `object` passes behind, and what the impossible variants do to that object while it
    is hidden: vanish, teleport by `teleport` metres along its motion, or take the colour `recolour`."""

    geom: str
    object: str
    recolour: tuple[int, int, int]
    recolour_name: str
    teleport: float


@dataclass(frozen=True)
class SceneSpec:
    name: str
    description: str
    mjcf: Path
    source: Path
    frame_skip: int
    max_frames: int
    cameras: tuple[str, ...]
    objects: tuple[ObjectSpec, ...]
    quantities: dict[str, QuantitySpec]
    motion_plane: str = "xz"
    actions: ActionSpec = field(default_factory=ActionSpec)
    reward: RewardSpec | None = None
    energy_tolerance: float | None = None
    occluder: OccluderSpec | None = None
    supersample: int = 1  # colour frames are rendered N x N times larger and box-averaged (anti-aliasing)

    @property
    def conditioned(self) -> tuple[str, ...]:
        """Names of the quantities the model is told about (pixels cannot show them)."""
        return tuple(n for n, q in self.quantities.items() if q.mode == "conditioned")


def _fail(path: Path, fld: str, msg: str) -> SceneError:
    return SceneError(msg, source=path, field=fld)


def _take(d: dict, allowed: set[str], required: set[str], path: Path, where: str) -> dict:
    if not isinstance(d, dict):
        raise _fail(path, where or "<top>", f"expected a mapping, got {type(d).__name__}")
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise _fail(path, f"{where}.{unknown[0]}".lstrip("."), f"unknown key; allowed keys: {sorted(allowed)}")
    missing = sorted(required - set(d))
    if missing:
        raise _fail(path, f"{where}.{missing[0]}".lstrip("."), "required key is missing")
    return d


def _range(v: Any, path: Path, fld: str) -> tuple[float, float]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
        raise _fail(path, fld, f"expected a range [low, high] of two numbers, got {v!r}")
    lo, hi = float(v[0]), float(v[1])
    if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
        raise _fail(path, fld, f"expected finite low <= high, got {v!r}")
    return lo, hi


def _quantity(name: str, d: Any, path: Path) -> QuantitySpec:
    fld = f"quantities.{name}"
    d = _take(d, {"kind", "mode", "id", "ood", "value", "objects"}, set(), path, fld)
    kind = d.get("kind", name)
    if kind not in OBSERVABLE_KINDS | HIDDEN_KINDS:
        raise _fail(path, f"{fld}.kind", f"unknown quantity kind {kind!r}; known: {sorted(OBSERVABLE_KINDS | HIDDEN_KINDS)}")
    mode = d.get("mode", "fixed" if "value" in d else "random")
    if mode not in {"random", "fixed", "conditioned"}:
        raise _fail(path, f"{fld}.mode", f"expected random, fixed or conditioned, got {mode!r}")
    if kind in HIDDEN_KINDS and mode == "random":
        raise _fail(path, f"{fld}.mode", f"{kind!r} cannot be seen in pixels: declare it `fixed` or `conditioned`")
    objects = d.get("objects")
    if objects is not None:
        if kind not in PER_OBJECT_KINDS:
            raise _fail(path, f"{fld}.objects", f"{kind!r} is not a per-object quantity")
        if not (isinstance(objects, list) and objects and all(isinstance(o, str) for o in objects)):
            raise _fail(path, f"{fld}.objects", "expected a non-empty list of object names")
        objects = tuple(objects)
    if mode == "fixed":
        if "value" not in d or not isinstance(d["value"], (int, float)):
            raise _fail(path, f"{fld}.value", "a fixed quantity needs a numeric `value`")
        if "id" in d or "ood" in d:
            raise _fail(path, fld, "a fixed quantity takes `value`, not `id`/`ood` ranges")
        return QuantitySpec(kind=kind, mode=mode, value=float(d["value"]), objects=objects)
    if "id" not in d:
        raise _fail(path, f"{fld}.id", "a randomised quantity needs an in-distribution range `id`")
    if "value" in d:
        raise _fail(path, f"{fld}.value", f"a {mode} quantity takes ranges, not a `value`")
    ood_raw = d.get("ood", [])
    if not isinstance(ood_raw, list):
        raise _fail(path, f"{fld}.ood", "expected a list of ranges [[low, high], ...]")
    ood = tuple(_range(r, path, f"{fld}.ood[{i}]") for i, r in enumerate(ood_raw))
    idr = _range(d["id"], path, f"{fld}.id")
    for i, (lo, hi) in enumerate(ood):
        if lo < idr[1] and hi > idr[0]:
            raise _fail(path, f"{fld}.ood[{i}]", f"out-of-distribution range {[lo, hi]} overlaps the id range {list(idr)}")
    return QuantitySpec(kind=kind, mode=mode, id=idr, ood=ood, objects=objects)


def _colour(v: Any, path: Path, fld: str) -> tuple[int, int, int]:
    if not (isinstance(v, (list, tuple)) and len(v) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in v)):
        raise _fail(path, fld, f"expected [r, g, b] integers in 0..255, got {v!r}")
    return (int(v[0]), int(v[1]), int(v[2]))


def colour_distance(a, b) -> float:
    return float(math.dist(tuple(float(x) for x in a), tuple(float(x) for x in b)))


def load_spec(path: str | Path) -> SceneSpec:
    """Read and validate a scene spec YAML file (MJCF-level checks happen when the model compiles)."""
    path = Path(path)
    if not path.is_file():
        raise SceneError("scene spec file not found", source=path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise SceneError(f"not valid YAML: {' '.join(str(e).split())}", source=path,
                         field=text_position(e)) from None
    top = {"name", "description", "mjcf", "frame_skip", "max_frames", "cameras", "objects", "quantities",
           "motion_plane", "actions", "reward", "energy_tolerance", "occluder", "supersample"}
    d = _take(raw, top, {"name", "mjcf", "frame_skip", "max_frames", "cameras", "objects"}, path, "")
    name = d["name"]
    if not (isinstance(name, str) and name.isidentifier() and name.islower()):
        raise _fail(path, "name", f"expected a lower-case identifier, got {name!r}")
    mjcf = path.parent / str(d["mjcf"])
    if not mjcf.is_file():
        raise _fail(path, "mjcf", f"MJCF file {mjcf} not found")
    for key in ("frame_skip", "max_frames"):
        if not (isinstance(d[key], int) and d[key] > 0):
            raise _fail(path, key, f"expected a positive integer, got {d[key]!r}")
    cams = d["cameras"]
    if not (isinstance(cams, list) and len(cams) >= 2 and all(isinstance(c, str) for c in cams)):
        raise _fail(path, "cameras", "expected a list of at least two MJCF camera names (the first is the default)")
    if not (isinstance(d["objects"], list) and d["objects"]):
        raise _fail(path, "objects", "expected a non-empty list of objects")
    objects = []
    for i, o in enumerate(d["objects"]):
        fld = f"objects[{i}]"
        o = _take(o, {"name", "body", "colour", "colour_name", "shape", "optional"}, {"name", "colour", "colour_name"}, path, fld)
        shape = o.get("shape", "sphere")
        if shape not in {"sphere", "box", "cylinder", "capsule"}:
            raise _fail(path, f"{fld}.shape", f"unknown shape {shape!r}")
        objects.append(ObjectSpec(name=str(o["name"]), body=str(o.get("body", o["name"])),
                                  colour=_colour(o["colour"], path, f"{fld}.colour"), colour_name=str(o["colour_name"]),
                                  shape=shape, optional=bool(o.get("optional", False))))
    names = [o.name for o in objects]
    if len(set(names)) != len(names):
        raise _fail(path, "objects", f"object names must be unique, got {names}")
    words = [f"{o.colour_name} {o.shape}" for o in objects]
    for i, w in enumerate(words):
        if w in words[:i]:
            raise _fail(path, f"objects[{i}].colour_name", f"two objects are both a {w!r}: captions could not tell them apart")
    for i, a in enumerate(objects):
        for j in range(i):
            b = objects[j]
            if colour_distance(a.colour, b.colour) < MIN_COLOUR_DISTANCE:
                raise _fail(path, f"objects[{i}].colour",
                            f"{a.name} {list(a.colour)} is too close to {b.name} {list(b.colour)} "
                            f"(distance {colour_distance(a.colour, b.colour):.0f} < {MIN_COLOUR_DISTANCE:.0f}): "
                            "objects must be told apart by colour")
    quantities = {str(k): _quantity(str(k), v, path) for k, v in (d.get("quantities") or {}).items()}
    for qname, q in quantities.items():
        for o in q.objects or ():
            if o not in names:
                raise _fail(path, f"quantities.{qname}.objects", f"unknown object {o!r}; objects: {names}")
    # Several quantities may share a per-object kind (e.g. one speed range per ball), as long as no object gets two.
    seen: dict[str, dict[str, str]] = {}
    for qname, q in quantities.items():
        owners = seen.setdefault(q.kind, {})
        targets = (q.objects or tuple(names)) if q.per_object else ("<scene>",)
        for o in targets:
            if o in owners:
                what = f"object {o!r}" if q.per_object else "the scene"
                raise _fail(path, f"quantities.{qname}", f"{what} already has a {q.kind!r} quantity ({owners[o]!r})")
            owners[o] = qname
    if "count" in quantities:
        q = quantities["count"]
        n_req = sum(not o.optional for o in objects)
        lo, hi = q.id if q.id is not None else (q.value, q.value)
        if lo < n_req or hi > len(objects):
            raise _fail(path, "quantities.count", f"count must lie within [{n_req}, {len(objects)}] (required..all objects)")
    plane = d.get("motion_plane", "xz")
    if plane not in MOTION_PLANES:
        raise _fail(path, "motion_plane", f"expected one of {sorted(MOTION_PLANES)}, got {plane!r}")
    a = _take(d.get("actions") or {}, {"kind"}, set(), path, "actions")
    if a.get("kind", "none") not in {"none", "actuators"}:
        raise _fail(path, "actions.kind", f"expected none or actuators, got {a.get('kind')!r}")
    reward = None
    if d.get("reward") is not None:
        r = _take(d["reward"], {"kind", "object", "goal", "success_radius"}, {"kind", "object", "goal", "success_radius"}, path, "reward")
        if r["kind"] != "goal_distance":
            raise _fail(path, "reward.kind", f"expected goal_distance, got {r['kind']!r}")
        if r["object"] not in names:
            raise _fail(path, "reward.object", f"unknown object {r['object']!r}; objects: {names}")
        reward = RewardSpec(kind="goal_distance", object=r["object"], goal=str(r["goal"]), success_radius=float(r["success_radius"]))
    if reward is None and ({"goal_x", "goal_y"} & {q.kind for q in quantities.values()}):
        raise _fail(path, "quantities", "goal_x/goal_y move the reward's goal site: the scene needs a `reward`")
    occluder = None
    if d.get("occluder") is not None:
        o = _take(d["occluder"], {"geom", "object", "recolour", "recolour_name", "teleport"},
                  {"geom", "object", "recolour", "recolour_name", "teleport"}, path, "occluder")
        if o["object"] not in names:
            raise _fail(path, "occluder.object", f"unknown object {o['object']!r}; objects: {names}")
        if not (isinstance(o["teleport"], (int, float)) and o["teleport"] > 0):
            raise _fail(path, "occluder.teleport", f"expected a positive distance in metres, got {o['teleport']!r}")
        recolour = _colour(o["recolour"], path, "occluder.recolour")
        for i, ob in enumerate(objects):
            if colour_distance(recolour, ob.colour) < MIN_COLOUR_DISTANCE:
                raise _fail(path, "occluder.recolour", f"{list(recolour)} is too close to {ob.name} {list(ob.colour)}")
        occluder = OccluderSpec(geom=str(o["geom"]), object=str(o["object"]), recolour=recolour,
                                recolour_name=str(o["recolour_name"]), teleport=float(o["teleport"]))
    if "occluder_width" in {q.kind for q in quantities.values()} and occluder is None:
        raise _fail(path, "quantities", "occluder_width sizes the `occluder`: the scene needs one")
    tol = d.get("energy_tolerance")
    supersample = d.get("supersample", 1)
    if not (isinstance(supersample, int) and not isinstance(supersample, bool) and 1 <= supersample <= MAX_SUPERSAMPLE):
        raise _fail(path, "supersample", f"expected an integer in 1..{MAX_SUPERSAMPLE}, got {supersample!r}")
    return SceneSpec(
        name=name, description=str(d.get("description", "")), mjcf=mjcf, source=path,
        frame_skip=d["frame_skip"], max_frames=d["max_frames"], cameras=tuple(cams), objects=tuple(objects),
        quantities=quantities, motion_plane=plane, actions=ActionSpec(kind=a.get("kind", "none")), reward=reward,
        energy_tolerance=None if tol is None else float(tol), occluder=occluder,
        supersample=supersample,
    )

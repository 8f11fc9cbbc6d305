"""Captions from simulator state: worldsim's exact version of Sora's re-captioning.

A short `prompt` (what a user would type) and a detailed `caption` are made from an episode's scene parameters and
its events (worldsim/sim/events.py), so they say only what the simulator did. A caption can be made for any window
of frames [start, stop): it describes the objects as they are at `start` and only the events with
start <= frame < stop. Both are pure functions: the same inputs give the same text.

The wording is a small regular grammar (docs/captions.md) so that a later parser can read prompts back into
parameters. Words used:
- object: "the <colour> <noun>", colour = the spec's `colour_name`, noun by shape (`NOUNS`);
- size (objects with a radius quantity): the radius within the quantity's in-distribution range, by thirds:
  small / medium / large; below it tiny, above it huge (`size_word`);
- direction (in the scene's motion plane, 45-degree sectors): right, up-right, up, up-left, left, down-left,
  down, down-right (`direction_word`); "up" is +z in a side view (xz) and +y in a top view (xy);
- numbers with two decimals and their units (m, m/s, kg, m/s2), angles in whole degrees.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from worldsim.sim.scene import active_objects
from worldsim.sim.spec import MOTION_PLANES, QuantitySpec, SceneSpec

NOUNS = {"sphere": "ball", "box": "block", "cylinder": "cylinder", "capsule": "capsule"}
DIRECTIONS = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
AT_REST_BELOW = 0.05  # m/s: slower than this an object is "at rest"
# Event types counted in a caption's closing sentence, with their singular and plural words.
TOTALS = (("bounce", "bounce", "bounces"), ("collision", "collision", "collisions"), ("push", "push", "pushes"),
          ("occluded", "occlusion", "occlusions"), ("emerged", "re-emergence", "re-emergences"), ("cut", "cut", "cuts"))


def object_words(spec: SceneSpec, k: int) -> str:
    """"red ball": the colour and noun that name object k in every caption."""
    o = spec.objects[k]
    return f"{o.colour_name} {NOUNS[o.shape]}"


def size_word(q: QuantitySpec, radius: float) -> str:
    """small / medium / large by thirds of the in-distribution range; tiny / huge outside it."""
    lo, hi = q.id if q.id is not None else (q.value, q.value)
    if radius < lo - 1e-9:
        return "tiny"
    if radius > hi + 1e-9:
        return "huge"
    if hi - lo < 1e-12:
        return "medium"
    third = (radius - lo) / (hi - lo)
    return "small" if third < 1 / 3 else "medium" if third < 2 / 3 else "large"


def direction_word(angle_deg: float) -> str:
    """The nearest of eight directions to an angle in the motion plane (0 = right, 90 = up)."""
    return DIRECTIONS[int(round((angle_deg % 360) / 45.0)) % 8]


def _quantity(spec: SceneSpec, params: dict, kind: str, k: int | None = None) -> tuple[QuantitySpec, float] | None:
    """The quantity of `kind` for object k (or the scene-level one) and its value in `params`, if any."""
    for name, q in spec.quantities.items():
        if q.kind != kind or name not in params:
            continue
        v = params[name]
        if q.per_object:
            if k is not None and v[k] is not None:
                return q, float(v[k])
        elif k is None:
            return q, float(v)
    return None


def _motion(spec: SceneSpec, params: dict, k: int, start: int, object_vel) -> tuple[float, float] | None:
    """(speed m/s, angle deg in the motion plane) of object k at `start`, or None where unknown."""
    a, b = MOTION_PLANES[spec.motion_plane]
    if object_vel is not None:
        v = np.asarray(object_vel)[start, k]
        return float(math.hypot(v[a], v[b])), math.degrees(math.atan2(v[b], v[a]))
    if start != 0:
        return None  # params describe frame 0 only
    speed = _quantity(spec, params, "speed", k)
    angle = _quantity(spec, params, "angle", k)
    return (speed[1] if speed else 0.0), (angle[1] if angle else 0.0)


def _moving(motion: tuple[float, float] | None, numbers: bool) -> str:
    if motion is None:
        return ""
    speed, angle = motion
    if speed < AT_REST_BELOW:
        return " at rest"
    heading = f" (heading {round(angle) % 360} deg)" if numbers else ""
    return f" moving {direction_word(angle)}{heading} at {speed:.2f} m/s"


def _size(spec: SceneSpec, params: dict, k: int) -> tuple[str, str]:
    """(size word + space or "", "radius R m" or "")."""
    r = _quantity(spec, params, "radius", k)
    return (f"{size_word(r[0], r[1])} ", f"radius {r[1]:.2f} m") if r else ("", "")


def prompt(spec: SceneSpec, params: dict) -> str:
    """The short prompt of an episode: objects with size, colour and motion at frame 0, then the occluder's width
    and the goal (where the scene draws them), then the quantities pixels cannot show.

    `collide: a small red ball moving right at 1.29 m/s; a large blue ball moving left at 0.58 m/s;
    red ball mass 1.72 kg; blue ball mass 0.50 kg.`"""
    active = active_objects(spec, params)
    parts = []
    for k in np.flatnonzero(active):
        size, _ = _size(spec, params, k)
        parts.append(f"a {size}{object_words(spec, k)}{_moving(_motion(spec, params, k, 0, None), numbers=False)}")
    parts += _scenery(spec, params)
    parts += _hidden(spec, params, active)
    return f"{spec.name}: " + "; ".join(parts) + "."


def _scenery(spec: SceneSpec, params: dict) -> list[str]:
    """Phrases for the scene-level quantities pixels do show: the occluder's width, the goal's position."""
    out = []
    w = _quantity(spec, params, "occluder_width")
    if w is not None:
        out.append(f"{spec.occluder.geom.replace('_', ' ')} {w[1]:.2f} m wide")
    gx, gy = _quantity(spec, params, "goal_x"), _quantity(spec, params, "goal_y")
    if gx is not None or gy is not None:
        out.append("goal at " + ", ".join(f"{ax} {q[1]:.2f} m" for ax, q in (("x", gx), ("y", gy)) if q is not None))
    return out


def _hidden(spec: SceneSpec, params: dict, active: np.ndarray) -> list[str]:
    """Phrases for the quantities pixels cannot show: gravity, then each active object's mass."""
    out = []
    g = _quantity(spec, params, "gravity")
    if g is not None:
        out.append(f"gravity {g[1]:.2f} m/s2")
    for k in np.flatnonzero(active):
        m = _quantity(spec, params, "mass", k)
        if m is not None:
            out.append(f"{object_words(spec, k)} mass {m[1]:.2f} kg")
    return out


def _event_text(spec: SceneSpec, e: dict, name: dict[str, str]) -> str:
    """One event as a clause; `name` maps object names to their words."""
    t = e["type"]
    if t == "bounce":
        return f"the {name[e['object']]} bounces off the {e['surface'].replace('_', ' ')}"
    if t == "collision":
        a, b = e["objects"]
        return f"the {name[a]} collides with the {name[b]}"
    if t == "push":
        return f"the {name[e['agent']]} pushes the {name[e['object']]}"
    if t == "occluded":
        return f"the {name[e['object']]} is occluded"
    if t == "emerged":
        return f"the {name[e['object']]} re-emerges"
    if t == "goal":
        return f"the {name[e['object']]} reaches the goal"
    if t == "shot":
        return f"the camera cuts to {e['camera']}"
    raise ValueError(f"unknown event type {t!r}")


def window_events(events: list[dict], start: int, stop: int) -> list[dict]:
    """The events a caption of frames [start, stop) describes: start <= frame < stop, in frame order, except the
    opening `shot` at `start` (the caption's first sentence names that camera)."""
    out = [e for e in events if start <= e["frame"] < stop and not (e["type"] == "shot" and e["frame"] == start)]
    return sorted(out, key=lambda e: e["frame"])  # stable: same-frame events keep their order


def counts(events: list[dict]) -> dict[str, int]:
    """Event counts by caption word (bounces, collisions, pushes, occlusions, re-emergences, cuts)."""
    c = Counter("cut" if e["type"] == "shot" else e["type"] for e in events)
    return {plural: c[t] for t, _, plural in TOTALS}


def caption(spec: SceneSpec, params: dict, events: list[dict], start: int = 0, stop: int | None = None, *,
            object_pos=None, object_vel=None) -> str:
    """The detailed caption of frames [start, stop) (stop None: to the last event, inclusive).

    `object_pos`, `object_vel` (frames, K, 3), as recorded in `info`, describe where the objects are and how they
    move at `start`; without them, positions and motion come from `params` when start == 0 and are left out
    otherwise (params describe frame 0 only)."""
    if stop is None:
        stop = max([e["frame"] for e in events], default=start) + 1
    active = active_objects(spec, params)
    shots = [e for e in events if e["type"] == "shot" and e["frame"] <= start]
    camera = shots[-1]["camera"] if shots else None
    header = f"Scene {spec.name}, frames {start} to {stop - 1}" + (f", camera {camera}." if camera else ".")
    sentences = [header]
    a, b = MOTION_PLANES[spec.motion_plane]
    axis_names = "xyz"
    for k in np.flatnonzero(active):
        _, radius = _size(spec, params, k)
        attrs = [radius] if radius else []
        m = _quantity(spec, params, "mass", k)
        if m is not None:
            attrs.append(f"mass {m[1]:.2f} kg")
        size, _ = _size(spec, params, k)
        text = f"The {size}{object_words(spec, k)}" + (f" ({', '.join(attrs)})" if attrs else "")
        where = []
        if object_pos is not None:
            p = np.asarray(object_pos)[start, k]
            where = [f"{axis_names[ax]} {p[ax]:.2f} m" for ax in (a, b)]
        elif start == 0:
            where = [f"{ax} {q[1]:.2f} m" for ax in axis_names if (q := _quantity(spec, params, ax, k)) is not None]
        if where:
            text += " is at " + ", ".join(where)
        motion = _moving(_motion(spec, params, k, start, object_vel), numbers=True)
        if motion:
            text += ("," if where else "") + motion
        sentences.append(text + ".")
    g = _quantity(spec, params, "gravity")
    if g is not None:
        sentences.append(f"Gravity is {g[1]:.2f} m/s2.")
    w = _quantity(spec, params, "occluder_width")
    if w is not None:
        sentences.append(f"The {spec.occluder.geom.replace('_', ' ')} is {w[1]:.2f} m wide.")
    gx, gy = _quantity(spec, params, "goal_x"), _quantity(spec, params, "goal_y")
    if gx is not None or gy is not None:
        where = ", ".join(f"{ax} {q[1]:.2f} m" for ax, q in (("x", gx), ("y", gy)) if q is not None)
        sentences.append(f"The goal is at {where}.")
    evs = window_events(events, start, stop)
    names = {o.name: object_words(spec, k) for k, o in enumerate(spec.objects)}
    for e in evs:
        sentences.append(f"Frame {e['frame']}: {_event_text(spec, e, names)}.")
    n = counts(evs)
    totals = ", ".join(f"{n[plural]} {one if n[plural] == 1 else plural}" for _, one, plural in TOTALS)
    sentences.append(f"In total: {totals}.")
    return " ".join(sentences)

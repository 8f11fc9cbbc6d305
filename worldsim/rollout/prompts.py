"""Prompts in a scene's vocabulary -> MuJoCo scene parameters and a detailed caption in the training style.

The reverse of `worldsim/sim/captions.py` (grammar in docs/captions.md): a short prompt such as
"a red ball bounces off the left wall" is read clause by clause with the caption grammar's closed word lists
(colours and nouns from the spec, sizes, eight directions, numbers with units, scenery names, event verbs). What it
fixes becomes constraints on the scene's quantities; everything it leaves open is drawn from the training
distribution with the given seed (Sora's prompt expansion, here exact). Events ("bounces off the left wall",
"collides with the blue ball", "is occluded") aim the object at the surface or object and are then *checked by
simulating the episode*: parameters are re-drawn (up to `tries` times) until MuJoCo really shows every event.
The detailed caption is then `captions.caption` of that simulated episode, so the same prompt yields the model's
conditioning (`Expansion.caption`, `Expansion.params`) and a MuJoCo video of the same parameters side by side.

Unparseable, unknown or contradictory prompts (and bytes that are not UTF-8) raise `ConfigError` with the
vocabulary the scene understands (`vocabulary(spec)`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import mujoco
import numpy as np

from worldsim.errors import ConfigError
from worldsim.sim.captions import DIRECTIONS, NOUNS, caption, object_words, prompt
from worldsim.sim.spec import MOTION_PLANES, SceneSpec

SIZES = ("tiny", "small", "medium", "large", "huge")
ARTICLES = r"(?:(?:a|an|the|one)\s+)?"
NUM = r"(-?\d+(?:\.\d+)?)"
MOVE_VERBS = r"(?:moving|moves|move|rolling|rolls|flying|flies|going|goes|travelling|traveling|travels|sliding|slides|heading|heads)"
CHECKED_EVENTS = ("bounce", "collision", "occluded", "emerged")
STOPWORDS = {"", "and", "then", "with", "there", "is", "are", "while"}


@dataclass
class ObjectAsk:
    size: str | None = None
    direction: str | None = None
    heading: float | None = None
    speed: float | None = None
    at_rest: bool = False
    mass: float | None = None


@dataclass
class ParsedPrompt:
    """What a prompt fixes: per object index, per scene-level kind, and the events it asks for."""

    objects: dict[int, ObjectAsk] = field(default_factory=dict)
    scene_values: dict[str, float] = field(default_factory=dict)  # gravity, goal_x, goal_y, occluder_width
    events: list[dict] = field(default_factory=list)  # {"type", "object", "surface" | "other"}


@dataclass
class Expansion:
    prompt: str  # the prompt in the canonical short form (captions.prompt)
    caption: str  # the detailed caption of the simulated episode as the recorder writes it (frame 0 from `params`)
    params: dict  # the scene quantities: reset option `params` of the MuJoCo env, model conditioning
    events: list[dict]  # MuJoCo's events of the simulated episode
    parsed: ParsedPrompt
    # the same caption as `data.window_captions` writes a clip's: where the objects are and how they move read from
    # the simulated frame 0's state, so every motion-plane axis is named (`occlusion`'s params place its balls
    # along x only: their height, z, is the scene's) and a ball the reset moved is where MuJoCo shows it
    state_caption: str

    def caption_for(self, window_captions: bool) -> str:
        """The caption in the style the weights were trained on (`WorldModel.scene.window_captions`)."""
        return self.state_caption if window_captions else self.caption


def _words(spec: SceneSpec) -> dict:
    colours = sorted({o.colour_name for o in spec.objects})
    nouns = sorted({NOUNS[o.shape] for o in spec.objects})
    from worldsim.sim.registry import get_scene

    m = get_scene(spec.name).model
    objs = {mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, ids.body) for ids in get_scene(spec.name).objects}
    surfaces = []
    for g in range(m.ngeom):
        name = mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g)
        if name and m.body(m.geom_bodyid[g]).name not in objs and m.geom_bodyid[g] == 0:
            surfaces.append(name)
    return {"colours": colours, "nouns": nouns, "surfaces": surfaces}


def vocabulary(spec: SceneSpec) -> str:
    """What the scene understands, for error messages and `--help`."""
    w = _words(spec)
    objs = ", ".join(object_words(spec, k) for k in range(len(spec.objects)))
    hidden = [q.kind for q in spec.quantities.values() if q.kind in ("gravity", "mass")]
    parts = [f"objects: {objs}", f"sizes: {', '.join(SIZES)}", f"directions: {', '.join(DIRECTIONS)}",
             "motion: 'moving DIR [at N m/s]', 'at rest'",
             f"events: 'bounces off the SURFACE' (surfaces: {', '.join(s.replace('_', ' ') for s in w['surfaces'])}), "
             "'collides with the OBJECT', 'pushes the OBJECT', 'reaches the goal', 'is occluded', 're-emerges'"]
    if hidden:
        parts.append("hidden: " + ", ".join({"gravity": "'gravity N m/s2'", "mass": "'OBJECT mass N kg'"}[h]
                                            for h in dict.fromkeys(hidden)))
    if spec.occluder is not None:
        parts.append(f"'{spec.occluder.geom.replace('_', ' ')} N m wide'")
    if spec.reward is not None:
        parts.append("'goal at x N m, y N m'")
    return f"scene {spec.name} understands: " + "; ".join(parts)


def _fail(spec: SceneSpec, msg: str) -> ConfigError:
    return ConfigError(f"{msg}. {vocabulary(spec)}", source=f"prompt ({spec.name})", field="prompt")


def parse_prompt(spec: SceneSpec, text: str | bytes) -> ParsedPrompt:
    """Read a prompt into constraints (module docstring); `ConfigError` on anything not understood."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise _fail(spec, f"the prompt is not UTF-8 text ({e.reason} at byte {e.start})") from None
    if not isinstance(text, str) or not text.strip():
        raise _fail(spec, "the prompt is empty")
    s = " ".join(text.lower().split())
    head = re.match(r"^(?:scene\s+)?([a-z_]+)\s*:\s*", s)
    if head:
        if head.group(1) != spec.name:
            raise _fail(spec, f"the prompt is for scene {head.group(1)!r}, the model for {spec.name!r}")
        s = s[head.end():]
    w = _words(spec)
    obj = (rf"{ARTICLES}(?:(?P<size>{'|'.join(SIZES)})\s+)?(?P<colour>[a-z]+)\s+(?P<noun>{'|'.join(w['nouns'])})s?")
    out = ParsedPrompt()
    # scene-level phrases first (the goal has a comma inside)
    for pat, kind in ((rf"goal\s+(?:is\s+)?at\s+x\s+{NUM}\s*m?,?\s+y\s+{NUM}\s*m?", "goal"),
                      (rf"gravity\s+(?:is\s+|of\s+)?{NUM}\s*(?:m/s2|m/s\^2|m/s²)", "gravity")):
        for m in list(re.finditer(pat, s)):
            if kind == "goal":
                _set_scene(spec, out, "goal_x", float(m.group(1)))
                _set_scene(spec, out, "goal_y", float(m.group(2)))
            else:
                _set_scene(spec, out, "gravity", float(m.group(1)))
        s = re.sub(pat, " ; ", s)
    if spec.occluder is not None:
        geom = spec.occluder.geom.replace("_", " ")
        pat = rf"(?:the\s+)?{re.escape(geom)}\s+(?:is\s+)?{NUM}\s*m\s+wide"
        for m in re.finditer(pat, s):
            _set_scene(spec, out, "occluder_width", float(m.group(1)))
        s = re.sub(pat, " ; ", s)
    clauses = re.split(r";|\.(?!\d)|,|\bthen\b|\band\b|\bwhile\b", s)
    subject = None  # "a red ball is occluded and re-emerges": a clause without an object continues the last one
    for raw in clauses:
        c = raw.strip()
        if c in STOPWORDS:
            continue
        subject = _clause(spec, w, obj, c, out, subject)
    return out


def _set_scene(spec: SceneSpec, out: ParsedPrompt, kind: str, value: float) -> None:
    if kind not in {q.kind for q in spec.quantities.values()}:
        raise _fail(spec, f"scene {spec.name} has no {kind.replace('_', ' ')}")
    if kind in out.scene_values and abs(out.scene_values[kind] - value) > 1e-9:
        raise _fail(spec, f"contradictory {kind}: {out.scene_values[kind]} and {value}")
    out.scene_values[kind] = value


def _object_index(spec: SceneSpec, colour: str, noun: str) -> int:
    for k, o in enumerate(spec.objects):
        if o.colour_name == colour and NOUNS[o.shape] == noun:
            return k
    raise _fail(spec, f"there is no {colour} {noun} in scene {spec.name}")


def _clause(spec: SceneSpec, w: dict, obj: str, c: str, out: ParsedPrompt, subject: int | None) -> int:
    """Read one clause into `out`; returns the object it was about."""
    m = re.match(rf"^(?:there\s+is\s+)?{obj}(?P<rest>.*)$", c)
    if m:
        k = _object_index(spec, m.group("colour"), m.group("noun"))
        rest = m.group("rest").strip()
    elif subject is not None:
        k, rest, m = subject, c, None
    else:
        raise _fail(spec, f"cannot read {c!r}")
    ask = out.objects.setdefault(k, ObjectAsk())
    if m is not None and m.group("size"):
        _agree(spec, ask, "size", m.group("size"), k)
    mv = re.match(rf"^{MOVE_VERBS}\s+(?P<dir>{'|'.join(re.escape(d) for d in sorted(DIRECTIONS, key=len, reverse=True))})"
                  rf"(?:\s*\(heading\s+(?P<deg>\d+)\s+deg\))?(?:\s+at\s+{NUM}\s*m/s)?\s*(?P<rest>.*)$", rest)
    if mv:
        _agree(spec, ask, "direction", mv.group("dir"), k)
        if mv.group("deg"):
            _agree(spec, ask, "heading", float(mv.group("deg")), k)
        if mv.group(3):
            _agree(spec, ask, "speed", float(mv.group(3)), k)
        rest = mv.group("rest").strip()
    else:
        sp = re.match(rf"^(?:moving\s+)?at\s+{NUM}\s*m/s\s*(?P<rest>.*)$", rest)
        if sp:
            _agree(spec, ask, "speed", float(sp.group(1)), k)
            rest = sp.group("rest").strip()
        rs = re.match(r"^(?:is\s+|stays\s+|lies\s+)?(?:at\s+rest|still|resting)\s*(?P<rest>.*)$", rest)
        if rs:
            if ask.speed not in (None, 0.0) or ask.direction is not None:
                raise _fail(spec, f"the {object_words(spec, k)} cannot be both moving and at rest")
            ask.at_rest = True
            rest = rs.group("rest").strip()
    if not rest:
        return k
    ms = re.match(rf"^(?:has\s+)?(?:a\s+)?mass\s+(?:of\s+|is\s+)?{NUM}\s*kg$", rest)
    if ms:
        if "mass" not in {q.kind for q in spec.quantities.values()}:
            raise _fail(spec, f"scene {spec.name} has no mass to set")
        _agree(spec, ask, "mass", float(ms.group(1)), k)
        return k
    name = object_words(spec, k)
    ev = re.match(r"^(?:bounces|bouncing|bounce)\s+off\s+(?:of\s+)?(?:the\s+)?(?P<surf>[a-z ]+)$", rest)
    if ev:
        out.events.append({"type": "bounce", "object": k, "surface": _surface(spec, w, ev.group("surf"))})
        return k
    ev = re.match(rf"^(?:collides|collide|crashes|hits)\s+(?:with\s+|into\s+)?{obj}$", rest)
    if ev:
        other = _object_index(spec, ev.group("colour"), ev.group("noun"))
        if other == k:
            raise _fail(spec, f"the {name} cannot collide with itself")
        out.objects.setdefault(other, ObjectAsk())
        out.events.append({"type": "collision", "object": k, "other": other})
        return k
    ev = re.match(rf"^pushes\s+{obj}(?:\s+to\s+the\s+goal)?$", rest)
    if ev:
        out.events.append({"type": "push", "object": k, "other": _object_index(spec, ev.group("colour"),
                                                                               ev.group("noun"))})
        return k
    if re.match(r"^reaches\s+the\s+goal$", rest):
        out.events.append({"type": "goal", "object": k})
        return k
    if re.match(r"^(?:is\s+occluded|is\s+hidden|hides|goes\s+behind\s+the\s+[a-z ]+)$", rest):
        out.events.append({"type": "occluded", "object": k})
        return k
    if re.match(r"^(?:re-emerges|reemerges|reappears|comes\s+out\s+again)$", rest):
        out.events.append({"type": "emerged", "object": k})
        return k
    raise _fail(spec, f"cannot read {rest!r} about the {name}")


def _surface(spec: SceneSpec, w: dict, words: str) -> str:
    want = set(words.split())
    for s in w["surfaces"]:
        if set(s.split("_")) == want:
            return s
    raise _fail(spec, f"there is no surface {words!r} in scene {spec.name}")


def _agree(spec: SceneSpec, ask: ObjectAsk, key: str, value, k: int) -> None:
    have = getattr(ask, key)
    if have is not None and have != value:
        raise _fail(spec, f"contradictory {key} for the {object_words(spec, k)}: {have!r} and {value!r}")
    if key == "speed" and ask.at_rest and value:
        raise _fail(spec, f"the {object_words(spec, k)} cannot be both moving and at rest")
    setattr(ask, key, value)


# --- constraints -> parameters --------------------------------------------------------------------------------


def _qname(spec: SceneSpec, kind: str, k: int | None) -> str | None:
    for name, q in spec.quantities.items():
        if q.kind == kind and (k is None or not q.per_object or q.objects is None
                               or spec.objects[k].name in q.objects):
            if (k is None) != q.per_object:
                return name
    return None


def _in_ranges(q, v: float) -> bool:
    if q.mode == "fixed":
        return abs(v - q.value) <= 1e-6
    return any(lo - 1e-9 <= v <= hi + 1e-9 for lo, hi in (q.id, *q.ood))


def _put(spec, params, kind, k, value, what) -> None:
    name = _qname(spec, kind, k)
    if name is None:
        raise _fail(spec, f"scene {spec.name} has no {kind} for {what}")
    q = spec.quantities[name]
    if not _in_ranges(q, value):
        allowed = f"fixed at {q.value}" if q.mode == "fixed" else f"{q.id} (ood {list(q.ood)})"
        raise _fail(spec, f"{kind} {value:g} for {what} is outside what the scene draws: {allowed}")
    if q.per_object:
        params[name][k] = float(value)
    else:
        params[name] = float(value)


def _size_radius(q, word: str, rng) -> float:
    lo, hi = q.id
    if word in ("tiny", "huge"):
        side = [r for r in q.ood if (r[1] <= lo if word == "tiny" else r[0] >= hi)]
        if not side:
            raise ValueError(word)
        a, b = side[0]
        return float(rng.uniform(a, b))
    i = ("small", "medium", "large").index(word)
    third = (hi - lo) / 3
    return float(rng.uniform(lo + i * third, lo + (i + 1) * third - 1e-9))


def draw_params(spec: SceneSpec, parsed: ParsedPrompt, rng: np.random.Generator, distribution: str = "id") -> dict:
    """Scene quantities satisfying `parsed`, everything else drawn from `distribution` with `rng`."""
    from worldsim.sim.registry import get_scene
    from worldsim.sim.scene import active_objects

    scene = get_scene(spec.name)
    params = scene.sample(rng, distribution)
    needed = sorted(set(parsed.objects) | {e["object"] for e in parsed.events})
    if "count" in params:
        optional_rank = np.cumsum([o.optional for o in spec.objects])
        n_req = sum(not o.optional for o in spec.objects)
        need = max([n_req + int(optional_rank[k]) if spec.objects[k].optional else n_req for k in needed] + [0])
        q = spec.quantities["count"]
        if need > q.id[1]:
            raise _fail(spec, f"the prompt needs {need} objects; the scene has at most {int(q.id[1])}")
        params["count"] = float(max(params["count"], need))
    active = active_objects(spec, params)
    plane = MOTION_PLANES[spec.motion_plane]
    for kind, v in parsed.scene_values.items():
        _put(spec, params, kind, None, v, "the scene")
    for k, ask in parsed.objects.items():
        what = f"the {object_words(spec, k)}"
        if not active[k]:
            raise _fail(spec, f"{what} cannot take part")
        if ask.size is not None:
            name = _qname(spec, "radius", k)
            if name is None:
                raise _fail(spec, f"{what} has one size in scene {spec.name}")
            try:
                params[name][k] = _size_radius(spec.quantities[name], ask.size, rng)
            except ValueError:
                raise _fail(spec, f"scene {spec.name} has no {ask.size} {what[4:]}") from None
        if ask.mass is not None:
            _put(spec, params, "mass", k, ask.mass, what)
        if ask.speed is not None or (ask.at_rest and _qname(spec, "speed", k) is not None):
            _put(spec, params, "speed", k, 0.0 if ask.at_rest else ask.speed, what)  # no speed quantity: at rest
        if ask.heading is not None or ask.direction is not None:
            if ask.heading is not None:
                deg = ask.heading
                if ask.direction is not None and DIRECTIONS[int(round((deg % 360) / 45)) % 8] != ask.direction:
                    raise _fail(spec, f"heading {deg:g} deg is not {ask.direction} for {what}")
            else:
                deg = DIRECTIONS.index(ask.direction) * 45.0 + float(rng.uniform(-20, 20))
            _put_angle(spec, params, k, deg % 360, what)
    for e in parsed.events:
        k, what = e["object"], f"the {object_words(spec, e['object'])}"
        if e["type"] in ("bounce", "collision") and parsed.objects.get(k, ObjectAsk()).direction is None \
                and parsed.objects.get(k, ObjectAsk()).heading is None and _qname(spec, "angle", k) is not None \
                and spec.quantities[_qname(spec, "angle", k)].mode != "fixed":
            target = _target(scene, params, e, plane)
            here = _position(scene, params, k)
            d = target - here
            _put_angle(spec, params, k, math.degrees(math.atan2(d[plane[1]], d[plane[0]])) % 360, what)
    return params


def _put_angle(spec, params, k, deg, what) -> None:
    name = _qname(spec, "angle", k)
    if name is None:
        raise _fail(spec, f"scene {spec.name} does not let the prompt set where {what} moves")
    q = spec.quantities[name]
    if q.mode == "fixed":
        if abs(((deg - q.value + 180) % 360) - 180) > 45:
            raise _fail(spec, f"{what} always moves {DIRECTIONS[int(round(q.value / 45)) % 8]} in scene {spec.name}")
        return
    params[name][k] = float(deg)


def _position(scene, params, k) -> np.ndarray:
    p = np.array(scene.model.body_pos[scene.objects[k].body], float)
    for ax, kind in enumerate("xyz"):
        v = scene.value(params, kind, k)
        if v is not None:
            p[ax] = v
    return p


def _target(scene, params, e, plane) -> np.ndarray:
    if e["type"] == "collision":
        return _position(scene, params, e["other"])
    m = scene.model
    gid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, e["surface"])
    pos = np.array(m.geom_pos[gid], float)
    if m.geom_type[gid] == mujoco.mjtGeom.mjGEOM_PLANE:  # a plane's position is anywhere on it: go straight at it
        here = _position(scene, params, e["object"])
        normal = m.geom_quat[gid]  # identity quat for floors: normal +z
        pos = here.copy()
        pos[2] = m.geom_pos[gid][2] if np.allclose(normal, [1, 0, 0, 0]) else pos[2]
    return pos


def _simulate(spec: SceneSpec, params: dict, frames: int, seed: int, visibility: bool
              ) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """MuJoCo's events over `frames` frames, and the objects' positions and velocities at frame 0 ((1, K, 3) each)."""
    from worldsim.sim.scene_env import SceneEnv

    env = SceneEnv(spec.name, resolution=16, visibility=visibility)
    try:
        _, info = env.reset(seed=seed, options={"params": params})
        events = list(info["events"])
        pos, vel = np.asarray(info["object_pos"])[None], np.asarray(info["object_vel"])[None]
        zero = np.zeros(env.action_space.shape, np.float32)
        for _ in range(frames - 1):
            _, _, _, _, info = env.step(zero)
            events += info["events"]
        return events, pos, vel
    finally:
        env.close()


def _satisfied(spec: SceneSpec, parsed: ParsedPrompt, events: list[dict]) -> bool:
    names = [o.name for o in spec.objects]
    for want in parsed.events:
        if want["type"] not in CHECKED_EVENTS:
            continue
        obj = names[want["object"]]
        ok = False
        for e in events:
            if e["type"] != want["type"]:
                continue
            if want["type"] == "bounce":
                ok |= e["object"] == obj and e["surface"] == want["surface"]
            elif want["type"] == "collision":
                ok |= set(e["objects"]) == {obj, names[want["other"]]}
            else:
                ok |= e["object"] == obj
        if not ok:
            return False
    return True


def expand(spec: SceneSpec, text: str | bytes, *, seed: int = 0, frames: int | None = None, distribution: str = "id",
           tries: int = 30) -> Expansion:
    """A prompt -> parameters, MuJoCo's events over `frames` frames, and the training-style detailed caption.
    Deterministic given `seed`; events the prompt asks for are checked in simulation (re-drawn up to `tries`)."""
    parsed = parse_prompt(spec, text)
    frames = int(frames or spec.max_frames)
    visibility = any(e["type"] in ("occluded", "emerged") for e in parsed.events)
    for attempt in range(tries):
        rng = np.random.default_rng([seed, attempt])
        params = draw_params(spec, parsed, rng, distribution)
        events, pos, vel = _simulate(spec, params, frames, seed, visibility)
        if _satisfied(spec, parsed, events):
            return Expansion(prompt(spec, params), caption(spec, params, events, 0, frames), params, events, parsed,
                             caption(spec, params, events, 0, frames, object_pos=pos, object_vel=vel))
    wanted = ", ".join(e["type"] for e in parsed.events if e["type"] in CHECKED_EVENTS)
    raise _fail(spec, f"no draw of the open quantities in {tries} tries made MuJoCo show: {wanted} within {frames} "
                      "frames (a longer clip, or fewer fixed quantities, may)")

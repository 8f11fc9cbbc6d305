"""A caption's numbers read into one vector: where each object is, how it moves, its size, colour and shape.

The byte encoder (`text.py`) learns nothing from the digits that place a ball (E75, E76: nulling the caption changed
the denoising loss by under 0.5%), so a model with `TextConfig.facts` also reads the caption the way `expand` reads a
prompt: by the captions' regular grammar (docs/captions.md), not by learned weights. Object sentences ("The large red
ball (radius 0.12 m, mass 1.47 kg) is at x -0.75 m, y 0.04 m, moving right (heading 356 deg) at 1.49 m/s.") fill one
slot each, in the order the caption names them; the scene sentences give gravity, the occluder's width and the goal.
Everything is read from the text alone, so the same caption gives the same vector in training and at generation.
Sentences of other forms (the header, events, totals) are not read: the objects' state at the first frame decides
the events of a deterministic scene. Objects past `slots` are left out; a colour outside `COLOURS` sets no colour bit.
"""

from __future__ import annotations

import math
import re

import torch

COLOURS = ("red", "green", "blue", "orange", "yellow", "purple", "white", "black")
SHAPES = ("ball", "block", "cylinder", "capsule")  # the nouns of `sim.captions.NOUNS`
SIZES = ("tiny", "small", "medium", "large", "huge")
FOURIER = 16  # sin/cos features per number (8 frequencies, 0.5-40 rad per unit: 1 px at 32 px is ~0.06 m)
# Per object: present, has a position, moves, at rest, then one-hots; numbers: radius, mass, x, y, z, and the
# velocity's two components in the motion plane (heading 0 = the plane's first axis).
OBJECT_FLAGS = 4 + len(COLOURS) + len(SHAPES) + len(SIZES)
OBJECT_NUMBERS = ("radius", "mass", "x", "y", "z", "va", "vb")
SLOT_DIM = OBJECT_FLAGS + len(OBJECT_NUMBERS) * (1 + FOURIER)  # one object slot's flags and number features
SCENE_NUMBERS = ("gravity", "width", "goal_x", "goal_y")  # gravity in units of 10 m/s2

_NUM = r"(-?\d+(?:\.\d+)?)"
_OBJECT = re.compile(rf"^The (?:({'|'.join(SIZES)}) )?(\w+) ({'|'.join(SHAPES)})\b")
_RADIUS = re.compile(rf"\bradius {_NUM} m\b")
_MASS = re.compile(rf"\bmass {_NUM} kg\b")
_AXIS = re.compile(rf"\b([xyz]) {_NUM} m\b")
_MOVING = re.compile(rf"\bmoving [\w-]+ \(heading {_NUM} deg\) at {_NUM} m/s")
_GRAVITY = re.compile(rf"^Gravity is {_NUM} m/s2$")
_WIDTH = re.compile(rf"^The [\w ]+ is {_NUM} m wide$")
_GOAL = re.compile(r"^The goal is at (.*)$")


def facts_dim(slots: int) -> int:
    """Length of the vector `read_facts` makes for `slots` object slots."""
    return slots * SLOT_DIM + len(SCENE_NUMBERS) * (2 + FOURIER)  # scene numbers: given, value, sin/cos


def sentences(caption: str) -> list[str]:
    """The caption's sentences without their full stops (a stop before a space and a capital ends one)."""
    return [s.strip().rstrip(".") for s in re.split(r"\.\s+(?=[A-Z])", caption.strip()) if s.strip()]


def _object(sentence: str) -> tuple[list[float], list[float]] | None:
    """(flags, numbers) of an object sentence, or None for a sentence of another form."""
    m = _OBJECT.match(sentence)
    if m is None:
        return None
    size, colour, shape = m.groups()
    numbers = dict.fromkeys(OBJECT_NUMBERS, 0.0)
    for pattern, key in ((_RADIUS, "radius"), (_MASS, "mass")):
        if (n := pattern.search(sentence)) is not None:
            numbers[key] = float(n.group(1))
    has_pos = " is at " in sentence
    if has_pos:
        where = sentence.split(" is at ", 1)[1]
        for axis, value in _AXIS.findall(where):
            numbers[axis] = float(value)
    moving = _MOVING.search(sentence)
    if moving is not None:
        heading, speed = math.radians(float(moving.group(1))), float(moving.group(2))
        numbers["va"], numbers["vb"] = speed * math.cos(heading), speed * math.sin(heading)
    flags = [1.0, float(has_pos), float(moving is not None), float(sentence.endswith(" at rest"))]
    flags += [float(colour == c) for c in COLOURS] + [float(shape == s) for s in SHAPES]
    flags += [float(size == s) for s in SIZES]
    return flags, [numbers[k] for k in OBJECT_NUMBERS]


def _scene(sentence: str, numbers: dict[str, float | None]) -> None:
    """Fill `numbers` from a scene sentence (gravity, occluder width, goal), if it is one."""
    if (m := _GRAVITY.match(sentence)) is not None:
        numbers["gravity"] = float(m.group(1)) / 10.0
    elif (m := _GOAL.match(sentence)) is not None:
        for axis, value in _AXIS.findall(m.group(1)):
            numbers[f"goal_{axis}"] = float(value)
    elif (m := _WIDTH.match(sentence)) is not None:
        numbers["width"] = float(m.group(1))


def number_features(values: torch.Tensor) -> torch.Tensor:
    """(..., N) numbers -> (..., N * (1 + FOURIER)): each value beside its sin/cos at geometric frequencies."""
    freqs = torch.exp(torch.linspace(math.log(0.5), math.log(40.0), FOURIER // 2))  # (F/2,)
    ang = values[..., None] * freqs                                                  # (..., N, F/2)
    feats = torch.cat((values[..., None], ang.cos(), ang.sin()), dim=-1)             # (..., N, 1 + F)
    return feats.flatten(-2)


def read_facts(captions: list[str], slots: int) -> torch.Tensor:
    """B captions -> (B, facts_dim(slots)) float: object slots in the order named, then the scene's numbers."""
    rows = []
    for caption in captions:
        objects, scene = [], dict.fromkeys(SCENE_NUMBERS)
        for s in sentences(caption or ""):
            read = _object(s)
            if read is None:
                _scene(s, scene)
            elif len(objects) < slots:
                objects.append(read)
        flags = torch.zeros(slots, OBJECT_FLAGS)
        numbers = torch.zeros(slots, len(OBJECT_NUMBERS))
        for k, (f, n) in enumerate(objects):
            flags[k], numbers[k] = torch.tensor(f), torch.tensor(n)
        feats = number_features(numbers) * flags[:, :1]                     # (slots, N * (1 + F))
        given = torch.tensor([v is not None for v in scene.values()], dtype=torch.float32)        # (S,)
        values = torch.tensor([v or 0.0 for v in scene.values()], dtype=torch.float32)          # (S,)
        scene_feats = number_features(values) * given.repeat_interleave(1 + FOURIER)           # (S * (1 + F),)
        rows.append(torch.cat((flags.flatten(), feats.flatten(), given, scene_feats)))
    return torch.stack(rows) if rows else torch.zeros(0, facts_dim(slots))


def object_slots(facts: torch.Tensor, slots: int) -> torch.Tensor:
    """(B, facts_dim(slots)) from `read_facts` -> (B, slots, SLOT_DIM): each slot's flags then its number features
    (flag 0 says whether the slot holds an object)."""
    flags = facts[:, : slots * OBJECT_FLAGS].reshape(len(facts), slots, OBJECT_FLAGS)
    numbers = facts[:, slots * OBJECT_FLAGS: slots * SLOT_DIM].reshape(len(facts), slots, SLOT_DIM - OBJECT_FLAGS)
    return torch.cat((flags, numbers), -1)

"""Captions from simulator state: counts agree with MuJoCo, words agree with the spec, windows stay in their window."""

from __future__ import annotations

import re

import worldsim  # noqa: I001 (first: it sets MUJOCO_GL before mujoco loads)
import mujoco
import numpy as np
import pytest

from worldsim.sim.captions import DIRECTIONS, caption, direction_word, prompt, size_word
from worldsim.sim.registry import get_scene

TOTALS = re.compile(r"In total: (\d+) bounces?, (\d+) collisions?, (\d+) push(?:es)?, (\d+) occlusions?, "
                    r"(\d+) re-emergences?, (\d+) cuts?\.$")
PROMPT = re.compile(r"^[a-z_]+: (a (?:(?:tiny|small|medium|large|huge) )?[a-z]+ [a-z]+"
                    r"(?: moving (?:" + "|".join(DIRECTIONS) + r") at \d+\.\d\d m/s| at rest)?)"
                    r"(?:; a (?:(?:tiny|small|medium|large|huge) )?[a-z]+ [a-z]+(?: moving [a-z-]+ at \d+\.\d\d m/s| at rest)?)*"
                    r"(?:; (?:[a-z ]+ \d+\.\d\d m wide|goal at x -?\d+\.\d\d m, y -?\d+\.\d\d m))*"
                    r"(?:; (?:gravity \d+\.\d\d m/s2|[a-z]+ [a-z]+ mass \d+\.\d\d kg))*\.$")


def _episode(name, seed, frames, options=None):
    env = worldsim.make(name, resolution=32)
    _, info = env.reset(seed=seed, options=options)
    infos = [info]
    for _ in range(frames):
        infos.append(env.step(np.zeros(env.action_space.shape, np.float32))[-1])
    return env, infos


def _totals(text: str) -> dict[str, int]:
    m = TOTALS.search(text)
    assert m, text
    return dict(zip(("bounces", "collisions", "pushes", "occlusions", "re-emergences", "cuts"), map(int, m.groups())))


def _mujoco_contact_counts(env, info0, steps: int) -> tuple[int, int]:
    """(object-scenery, object-object) contact onsets counted on a fresh MjData from the episode's first state,
    one physics step at a time: a pair counts when it touches at a step and did not at the step before."""
    model = env.model
    data = mujoco.MjData(model)
    data.qpos[:], data.qvel[:] = info0["qpos"], info0["qvel"]
    data.xfrc_applied[:] = env.data.xfrc_applied  # inactive objects are held still
    obj = {int(g): k for k, ids in enumerate(env.scene.objects) for g in ids.geoms}
    before: set = set()
    bounces = collisions = 0
    for _ in range(steps):
        mujoco.mj_step(model, data)
        now = {tuple(sorted((int(a), int(b)))) for a, b in zip(data.contact.geom1[:data.ncon], data.contact.geom2[:data.ncon])}
        for a, b in now - before:
            if a in obj and b in obj:
                collisions += 1
            elif a in obj or b in obj:
                bounces += 1
        before = now
    return bounces, collisions


@pytest.mark.parametrize("name,seed", [("bounce", 0), ("bounce", 3), ("collide", 1), ("parabola", 2)])
def test_caption_counts_equal_mujoco_contacts(name, seed):
    frames = 100
    env, infos = _episode(name, seed, frames)
    events = [e for i in infos for e in i["events"]]
    n = _totals(caption(env.scene.spec, infos[0]["params"], events, 0, frames + 1))
    bounces, collisions = _mujoco_contact_counts(env, infos[0], frames * env.frame_skip)
    assert (n["bounces"], n["collisions"]) == (bounces, collisions)
    assert bounces + collisions > 0
    assert infos[-1]["caption"] == caption(env.scene.spec, infos[0]["params"], events, 0, frames + 1)
    env.close()


def test_caption_counts_equal_visibility_events():
    """Occlusions and re-emergences in the caption equal the hidden spells in the visible fractions."""
    for seed in range(3):
        env, infos = _episode("occlusion", seed, 60)
        vis = np.array([i["object_visible"] for i in infos])  # (T, K)
        active = infos[0]["object_active"]
        spells = 0
        for k in np.flatnonzero(active):
            hidden = vis[:, k] < 0.02
            # entries into a hidden spell after the object was seen (>= 0.99) and before it is seen again
            for f in range(1, len(hidden)):
                if hidden[f] and not hidden[f - 1] and vis[:f, k].max() >= 0.99 and vis[f:, k].max() >= 0.99:
                    spells += 1
        n = _totals(infos[-1]["caption"])
        assert n["occlusions"] == n["re-emergences"] == spells == active.sum(), (seed, n, spells)
        env.close()


def test_pushes_and_cuts_are_counted():
    from worldsim.sim.push_policy import scripted_push_policy

    env = worldsim.make("push", resolution=24)
    _, info = env.reset(seed=0, options={"shots": [[0, "top"], [30, "angled"], [60, "top"]]})
    events = list(info["events"])
    for _ in range(90):
        info = env.step(scripted_push_policy(env))[-1]
        events += info["events"]
    n = _totals(info["caption"])
    assert n["cuts"] == 2 and n["pushes"] == len([e for e in events if e["type"] == "push"]) >= 1
    assert "the camera cuts to angled" in info["caption"] and "the blue cylinder pushes the red block" in info["caption"]
    env.close()


def test_colour_and_size_words_match_the_spec():
    spec = get_scene("bounce").spec
    q = spec.quantities["radius"]
    for seed, distribution in [(0, "id"), (1, "id"), (2, "ood:radius"), (3, "ood:radius")]:
        env, infos = _episode("bounce", seed, 2, options={"distribution": distribution})
        params = infos[0]["params"]
        text, short = infos[-1]["caption"], prompt(spec, params)
        for k, o in enumerate(spec.objects):
            r = params["radius"][k]
            lo, hi = q.id
            expected = ("tiny" if r < lo else "huge" if r > hi else
                        ["small", "medium", "large"][min(int(3 * (r - lo) / (hi - lo)), 2)])
            phrase = f"{expected} {o.colour_name} ball"
            if infos[0]["object_active"][k]:
                assert f"The {phrase} (radius {r:.2f} m)" in text and f"a {phrase}" in short
            else:
                assert o.colour_name not in text and o.colour_name not in short
        env.close()
    assert size_word(q, 0.02) == "tiny" and size_word(q, 0.5) == "huge" and size_word(q, 0.11) == "medium"


def test_direction_words():
    assert [direction_word(a) for a in (0, 44, 46, 90, 180, 269, 300, 359)] == \
        ["right", "up-right", "up-right", "up", "left", "down", "down-right", "right"]


def test_window_caption_mentions_only_its_events():
    env, infos = _episode("bounce", 5, 120)
    spec, params = env.scene.spec, infos[0]["params"]
    events = [e for i in infos for e in i["events"]]
    pos = np.stack([i["object_pos"] for i in infos])
    vel = np.stack([i["object_vel"] for i in infos])
    for start, stop in [(0, 10), (10, 40), (37, 38), (60, 121)]:
        text = caption(spec, params, events, start, stop, object_pos=pos, object_vel=vel)
        frames = [int(f) for f in re.findall(r"Frame (\d+):", text)]
        assert all(start <= f < stop for f in frames), (start, stop, frames)
        inside = [e for e in events if start <= e["frame"] < stop and e["type"] != "shot"]
        assert len(frames) == len(inside)
        n = _totals(text)
        assert n["bounces"] == sum(e["type"] == "bounce" for e in inside)
        assert n["collisions"] == sum(e["type"] == "collision" for e in inside)
        assert text.startswith(f"Scene bounce, frames {start} to {stop - 1}, camera front.")
    # objects are described as they are at the window's start, from the recorded state
    text = caption(spec, params, events, 50, 60, object_pos=pos, object_vel=vel)
    assert f"x {pos[50, 0, 0]:.2f} m" in text and f"at {np.hypot(vel[50, 0, 0], vel[50, 0, 2]):.2f} m/s" in text
    env.close()


def test_captions_are_deterministic_per_seed():
    a = _episode("collide", 4, 30)[1]
    b = _episode("collide", 4, 30)[1]
    c = _episode("collide", 5, 30)[1]
    spec = get_scene("collide").spec
    assert a[-1]["caption"] == b[-1]["caption"] != c[-1]["caption"]
    assert prompt(spec, a[0]["params"]) == prompt(spec, b[0]["params"]) != prompt(spec, c[0]["params"])


@pytest.mark.parametrize("name", worldsim.scene_names())
def test_prompts_follow_the_grammar(name):
    """Every scene's prompt parses with the grammar of docs/captions.md; conditioned quantities are stated."""
    env = worldsim.make(name, resolution=16)
    spec = env.scene.spec
    for seed in range(3):
        params = env.reset(seed=seed)[1]["params"]
        p = prompt(spec, params)
        assert PROMPT.match(p), p
        if "gravity" in spec.conditioned:
            assert f"gravity {params['gravity']:.2f} m/s2" in p
        if "mass" in spec.conditioned:
            assert all(f"mass {m:.2f} kg" in p for m in params["mass"])
        if "goal_x" in params:
            assert f"goal at x {params['goal_x']:.2f} m, y {params['goal_y']:.2f} m" in p
        if "occluder_width" in params:
            assert f"wall {params['occluder_width']:.2f} m wide" in p
    env.close()

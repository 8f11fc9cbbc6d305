"""A caption's numbers read by its grammar (`TextConfig.facts`): what MuJoCo's state says comes back out of the text,
prompts' expansions read the same way, and the model's text group uses it (zero at init, nulled with the text)."""

from __future__ import annotations

import math

import worldsim  # noqa: I001 (first: it sets MUJOCO_GL before mujoco loads)
import numpy as np
import pytest
import torch

from worldsim.errors import ConfigError
from worldsim.models import Cond, build_model
from worldsim.models.caption_facts import (COLOURS, FOURIER, OBJECT_FLAGS, OBJECT_NUMBERS, SHAPES, SCENE_NUMBERS,
                                           facts_dim, read_facts)
from worldsim.models.config import TextConfig
from worldsim.rollout.prompts import expand
from worldsim.sim.captions import NOUNS, caption
from worldsim.sim.registry import get_scene
from worldsim.sim.spec import MOTION_PLANES

PER_NUMBER = 1 + FOURIER


def _slots(facts: torch.Tensor, slots: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(flags (slots, OBJECT_FLAGS), numbers (slots, len(OBJECT_NUMBERS))) of one caption's vector."""
    flags = facts[: slots * OBJECT_FLAGS].reshape(slots, OBJECT_FLAGS)
    feats = facts[slots * OBJECT_FLAGS: slots * (OBJECT_FLAGS + len(OBJECT_NUMBERS) * PER_NUMBER)]
    return flags, feats.reshape(slots, len(OBJECT_NUMBERS), PER_NUMBER)[..., 0]


@pytest.mark.parametrize("name,seed,start", [("collide", 1, 7), ("occlusion", 2, 4), ("push", 0, 3),
                                             ("bounce", 3, 9)])
def test_a_window_caption_gives_back_mujocos_state_at_its_first_frame(name, seed, start):
    env = worldsim.make(name, resolution=32)
    _, info = env.reset(seed=seed)
    infos = [info] + [env.step(env.action_space.sample())[-1] for _ in range(start + 4)]
    env.close()
    spec = get_scene(name).spec
    pos, vel = np.array([i["object_pos"] for i in infos]), np.array([i["object_vel"] for i in infos])  # (T, K, 3)
    text = caption(spec, info["params"], [], start, start + 4, object_pos=pos, object_vel=vel)
    active = np.flatnonzero(info["object_active"])
    flags, numbers = _slots(read_facts([text], 4)[0], 4)
    a, b = MOTION_PLANES[spec.motion_plane]
    assert flags[: len(active), 0].all() and not flags[len(active):].any()  # one slot per object named
    for slot, k in enumerate(active):
        o = spec.objects[k]
        assert flags[slot, 4 + COLOURS.index(o.colour_name)] == 1 and flags[slot, 4:4 + len(COLOURS)].sum() == 1
        assert flags[slot, 4 + len(COLOURS) + SHAPES.index(NOUNS[o.shape])] == 1
        got = dict(zip(OBJECT_NUMBERS, numbers[slot].tolist()))
        for ax in (a, b):  # two decimals in the caption
            assert abs(got["xyz"[ax]] - pos[start, k, ax]) <= 0.0051, (slot, ax)
        speed = math.hypot(vel[start, k, a], vel[start, k, b])
        if speed >= 0.05:  # faster than "at rest": heading to the degree, speed to the hundredth
            tol = 0.0051 + speed * math.radians(0.5)
            assert abs(got["va"] - vel[start, k, a]) <= tol and abs(got["vb"] - vel[start, k, b]) <= tol
        else:
            assert flags[slot, 3] == 1 and got["va"] == got["vb"] == 0.0


def test_a_prompts_expansion_is_read_as_its_parameters():
    spec = get_scene("collide").spec
    x = expand(spec, "a red ball collides with the blue ball", seed=4)
    flags, numbers = _slots(read_facts([x.caption], 3)[0], 3)
    for k in range(2):
        got = dict(zip(OBJECT_NUMBERS, numbers[k].tolist()))
        assert abs(got["x"] - x.params[f"x{k}"][k]) <= 0.0051 and abs(got["y"] - x.params["y"][k]) <= 0.0051
        assert abs(got["radius"] - x.params["radius"][k]) <= 0.0051 and abs(got["mass"] - x.params["mass"][k]) <= 0.0051
        speed, heading = x.params[f"speed{k}"][k], math.radians(x.params[f"angle{k}"][k])
        assert abs(got["va"] - speed * math.cos(heading)) <= 0.0051 + speed * math.radians(0.5)
    assert flags[2].sum() == 0  # the third slot is empty
    # scene sentences: gravity (in tens of m/s2), the occluder's width, the goal
    scene = read_facts(["Scene parabola, frames 0 to 9, camera front. Gravity is 9.81 m/s2. The wall is 0.34 m "
                        "wide. The goal is at x 0.32 m, y -0.05 m. In total: 0 bounces."], 1)[0]
    tail = scene[-len(SCENE_NUMBERS) * (1 + PER_NUMBER):]
    given, values = tail[: len(SCENE_NUMBERS)], tail[len(SCENE_NUMBERS):].reshape(len(SCENE_NUMBERS), PER_NUMBER)
    assert given.tolist() == [1.0] * 4
    torch.testing.assert_close(values[:, 0], torch.tensor([0.981, 0.34, 0.32, -0.05]))


def test_other_text_reads_as_nothing_and_extra_objects_are_left_out():
    dim = facts_dim(2)
    empty = read_facts(["", "a small red ball moving right", "In total: 0 bounces."], 2)
    assert empty.shape == (3, dim) and not empty.any()  # prompts and event sentences are not object sentences
    three = ("The red ball is at x 0.10 m, y 0.20 m, at rest. The blue ball is at x 0.30 m, y 0.40 m, at rest. "
             "The green ball is at x 0.50 m, y 0.60 m, at rest.")
    flags, numbers = _slots(read_facts([three], 2)[0], 2)
    assert flags[:, 0].tolist() == [1.0, 1.0] and numbers[:, 2].tolist() == pytest.approx([0.1, 0.3])


def test_the_text_group_reads_facts_zero_at_init_and_nulled_with_the_text():
    torch.manual_seed(0)
    text = {"width": 32, "depth": 1, "heads": 2, "max_len": 64}
    plain, facts = build_model("debug", text=text), build_model("debug", text={**text, "facts": 2})
    assert not facts.cond.facts[-1].weight.any() and not facts.cond.facts[-1].bias.any()
    with torch.no_grad():  # random weights everywhere, as if trained (adaLN-Zero would make every output 0)
        for p in plain.parameters():
            p.normal_(0, 0.1)
    facts.load_state_dict({**facts.state_dict(), **plain.state_dict()})
    x, s = torch.randn(2, 3, 3, 8, 8), torch.rand(2, 3)
    left = ["The red ball is at x -0.50 m, y 0.00 m, at rest.", "The red ball is at x 0.50 m, y 0.00 m, at rest."]
    plain.eval(), facts.eval()
    torch.testing.assert_close(facts(x, s, Cond(text=left)), plain(x, s, Cond(text=left)))  # the file's function
    with torch.no_grad():
        facts.cond.facts[-1].weight.normal_(0, 0.1)  # as if trained
    # the facts add their own embedding to the text group's, one per caption: here two that differ in one number
    added = facts.cond(s, Cond(text=left)) - plain.cond(s, Cond(text=left))                   # (B, T, w)
    torch.testing.assert_close(added, facts.cond.facts(read_facts(left, 2))[:, None].expand_as(added))
    assert not torch.allclose(added[0], added[1])
    y = facts(x, s, Cond(text=left))
    assert not torch.allclose(y, plain(x, s, Cond(text=left)))
    torch.testing.assert_close(facts(x, s, Cond(text=left).without("text")), plain(x, s, Cond(text=left).without(
        "text")))
    from worldsim.models.text import tokenize  # byte ids read back to their captions
    torch.testing.assert_close(facts(x, s, Cond(text=tokenize(left, 64))), y)
    with pytest.raises(ConfigError) as e:
        TextConfig(facts=-1)
    assert e.value.field == "facts"


def test_the_layout_places_each_object_on_the_first_frames_tokens_only():
    torch.manual_seed(0)
    text = {"width": 32, "depth": 1, "heads": 2, "max_len": 64, "facts": 2}
    m = build_model("debug", text={**text, "layout": True})
    assert not m.cond.layout.out[-1].weight.any()  # zero at init: the network without it
    with torch.no_grad():  # as if trained
        for p in m.parameters():
            p.normal_(0, 0.1)
    m.eval()
    left = "The red ball is at x -0.50 m, y 0.00 m, at rest."
    right = "The red ball is at x 0.50 m, y 0.00 m, at rest."
    s = torch.rand(3, 2)
    _, lay = m.cond.embed(s, Cond(text=[left, right, None]), grid=(2, 2))               # (B, S, w)
    assert lay.shape == (3, 4, m.cfg.width) and not lay[2].any() and lay[0].abs().sum() > 0  # no caption: none
    assert not torch.allclose(lay[0], lay[1])  # another place
    assert m.cond.embed(s, Cond(text=[left, right, None]).without("text"), grid=(2, 2))[1] is None
    assert m.cond.embed(s, Cond(text=[left, right, None]))[1] is None  # no grid: the vector only
    # only the first frame's tokens take it: a cached frame after it is the same without the layout
    x = torch.randn(1, 2, 3, 8, 8)
    cache = m.new_cache()
    first = m(x[:, :1], s[:1, :1], Cond(text=[left]), cache=cache, write_cache=True)
    after = m(x[:, 1:], s[:1, 1:], Cond(text=[left]), cache=cache)
    with torch.no_grad():
        m.cond.layout.out[-1].weight.zero_(), m.cond.layout.out[-1].bias.zero_()
    torch.testing.assert_close(m(x[:, 1:], s[:1, 1:], Cond(text=[left]), cache=cache), after)
    assert not torch.allclose(m(x[:, :1], s[:1, :1], Cond(text=[left])), first)  # the first frame's did change
    with pytest.raises(ConfigError) as e:
        TextConfig(layout=True)
    assert e.value.field == "layout"

"""Prompts -> scene parameters and training-style captions (issue 7): the same prompt conditions the model and
sets up MuJoCo; what it asks for really happens in MuJoCo; nonsense is a clear error listing the vocabulary."""

from __future__ import annotations

import re

import numpy as np
import pytest
from rollout_helpers import debug_weights

from worldsim.errors import ConfigError
from worldsim.rollout import WorldModel, expand, generate, parse_prompt
from worldsim.sim.captions import caption as make_caption
from worldsim.sim.registry import get_scene
from worldsim.sim.scene_env import SceneEnv

BOUNCE = get_scene("bounce").spec


def _events(scene: str, params: dict, frames: int, visibility: bool = False) -> list[dict]:
    env = SceneEnv(scene, resolution=16, visibility=visibility)
    _, info = env.reset(seed=0, options={"params": params})
    ev = list(info["events"])
    for _ in range(frames - 1):
        ev += env.step(np.zeros(env.action_space.shape, np.float32))[4]["events"]
    env.close()
    return ev


def test_event_prompt_becomes_parameters_that_make_mujoco_do_it():
    e = expand(BOUNCE, "a red ball bounces off the left wall", seed=0, frames=50)
    ev = _events("bounce", e.params, 50)
    assert any(x["type"] == "bounce" and x["object"] == "ball0" and x["surface"] == "wall_left" for x in ev)
    assert "the red ball bounces off the wall left" in e.caption
    # the caption is exactly the training captions' function of the simulated episode
    assert e.caption == make_caption(BOUNCE, e.params, ev, 0, 50)
    assert e.prompt.startswith("bounce: ") and "red ball" in e.prompt


def test_expansion_is_seeded_and_draws_what_is_left_open():
    a = expand(BOUNCE, "a large red ball moving up at 2.50 m/s", seed=3, frames=10)
    b = expand(BOUNCE, "a large red ball moving up at 2.50 m/s", seed=3, frames=10)
    c = expand(BOUNCE, "a large red ball moving up at 2.50 m/s", seed=4, frames=10)
    assert a.params == b.params and a.caption == b.caption and a.params != c.params
    lo, hi = BOUNCE.quantities["radius"].id
    assert hi - (hi - lo) / 3 <= a.params["radius"][0] <= hi  # "large": the top third
    assert a.params["speed"][0] == 2.5 and 67.5 <= a.params["angle"][0] <= 112.5  # "up"
    assert re.match(r"Scene bounce, frames 0 to 9, camera front\. The large red ball \(radius 0\.\d\d m\)", a.caption)


def test_scenery_hidden_quantities_and_occlusion_events():
    c = expand(get_scene("collide").spec, "the red ball collides with the blue ball; red ball mass 1.50 kg",
               seed=0, frames=40)
    assert c.params["mass"][0] == 1.5 and "collides with the blue ball" in c.caption
    o = expand(get_scene("occlusion").spec, "occlusion: a red ball is occluded and re-emerges; wall 0.30 m wide",
               seed=0, frames=60)
    assert o.params["occluder_width"] == 0.3
    assert "the red ball is occluded" in o.caption and "the red ball re-emerges" in o.caption
    p = expand(get_scene("push").spec, "a red block at rest; goal at x 0.20 m, y -0.10 m", seed=0, frames=3)
    assert (p.params["goal_x"], p.params["goal_y"]) == (0.2, -0.1)


def test_state_caption_describes_frame_zero_as_window_captions_do():
    """Weights trained on clips captioned from their first frame's recorded state (`data.window_captions`) get the
    prompt's caption in that style: `occlusion`'s params place its balls along x only, so the episode-style caption
    leaves out their height, which the state caption names as MuJoCo shows it."""
    from worldsim.models.caption_facts import OBJECT_NUMBERS, _object, sentences

    spec = get_scene("occlusion").spec
    x = expand(spec, "a blue ball moving left is occluded", seed=2, frames=32)
    env = SceneEnv("occlusion", resolution=16)
    _, info = env.reset(seed=2, options={"params": x.params})
    env.close()
    assert x.caption_for(False) == x.caption and x.caption_for(True) == x.state_caption
    assert x.state_caption == make_caption(spec, x.params, x.events, 0, 32, object_pos=info["object_pos"][None],
                                           object_vel=info["object_vel"][None])
    read = {style: [_object(s) for s in sentences(text)]
            for style, text in (("episode", x.caption), ("state", x.state_caption))}
    z = OBJECT_NUMBERS.index("z")
    heights = [n[z] for f, n in filter(None, read["state"])]
    assert heights and all(h > 0.05 for h in heights)  # on their lanes above the floor, as in every training clip
    assert all(n[z] == 0.0 for f, n in filter(None, read["episode"]))  # what the episode style left the facts


def test_same_prompt_conditions_the_model_and_sets_up_mujoco(tmp_path):
    spec = get_scene("collide").spec
    m = WorldModel.load(debug_weights(tmp_path / "collide.safetensors", "collide"))  # param_dim = masses
    e = expand(spec, "a red ball; blue ball mass 2.00 kg", seed=1, frames=8)
    g = generate(m, "t2v", frames=4, steps=2, caption=e.caption, params=e.params)
    e2 = expand(spec, "a red ball; blue ball mass 0.60 kg", seed=1, frames=8)
    g2 = generate(m, "t2v", frames=4, steps=2, caption=e.caption, params=e2.params)
    assert not np.array_equal(g.frames, g2.frames)  # the parameters reach the model
    env = SceneEnv("collide", resolution=16)
    _, info = env.reset(seed=0, options={"params": e.params})
    assert info["params"]["mass"][1] == 2.0
    env.close()


@pytest.mark.parametrize("text, msg", [
    ("a purple ball", "no purple ball"),
    ("a red ball moving left; the red ball moving right", "contradictory direction"),
    ("a red ball at rest; the red ball moving up at 2.00 m/s", "contradictory|both moving and at rest"),
    ("a small red ball; a large red ball", "contradictory size"),
    ("flibber flabber", "cannot read"),
    ("collide: a red ball", "for scene 'collide'"),
    ("a red ball bounces off the roof", "no surface"),
    (b"a red \xff ball", "not UTF-8"),
    ("", "empty"),
])
def test_bad_prompts_list_what_the_scene_understands(text, msg):
    with pytest.raises(ConfigError, match=msg) as e:
        parse_prompt(BOUNCE, text)
    assert "scene bounce understands" in str(e.value) and "red ball" in str(e.value)


def test_out_of_range_and_impossible_requests():
    with pytest.raises(ConfigError, match="fixed at 9.81"):
        expand(BOUNCE, "a red ball; gravity 3.00 m/s2", frames=5)
    with pytest.raises(ConfigError, match="outside"):
        expand(BOUNCE, "a red ball moving up at 40.00 m/s", frames=5)
    with pytest.raises(ConfigError, match="always moves right"):
        expand(get_scene("occlusion").spec, "a red ball moving left", frames=5)
    with pytest.raises(ConfigError, match="no draw"):
        expand(BOUNCE, "a red ball at rest bounces off the wall right", frames=3, tries=2)

"""Bad scene input gets a clear error naming the file and the field, never a traceback from deep inside."""

from __future__ import annotations


import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim
from worldsim.errors import ActionError, SceneError
from worldsim.sim.scene import load_scene

from conftest import ROOT, doc_files, edit_text


@pytest.fixture
def bounce_copy(scene_copy):
    return scene_copy("bounce")


_edit = edit_text


def test_malformed_mjcf(bounce_copy):
    _edit(bounce_copy / "bounce.xml", "</worldbody>", "</worldbdy>")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "bounce.xml" in str(e.value) and "does not compile" in str(e.value)


def test_spec_names_unknown_body(bounce_copy):
    _edit(bounce_copy / "spec.yaml", "body: ball2", "body: ball9")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "spec.yaml" in str(e.value) and "objects[2].body" in str(e.value) and "ball9" in str(e.value)


def test_clashing_object_colours(bounce_copy):
    _edit(bounce_copy / "spec.yaml", "colour: [40, 170, 60]", "colour: [210, 50, 45]")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "spec.yaml" in str(e.value) and "objects[1].colour" in str(e.value) and "too close" in str(e.value)


def test_object_colour_clashing_with_scenery(bounce_copy):
    _edit(bounce_copy / "spec.yaml", "colour: [40, 80, 230]", "colour: [225, 225, 215]")  # the backdrop's colour
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "objects[2].colour" in str(e.value) and "backdrop" in str(e.value)


def test_unknown_spec_key(bounce_copy):
    _edit(bounce_copy / "spec.yaml", "max_frames: 250", "max_frames: 250\nmax_frame: 3")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "spec.yaml" in str(e.value) and "max_frame" in str(e.value) and "unknown key" in str(e.value)


@pytest.mark.parametrize("value", ["0", "9", "2.5", "yes"])
def test_bad_supersample(bounce_copy, value):
    _edit(bounce_copy / "spec.yaml", "max_frames: 250", f"max_frames: 250\nsupersample: {value}")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "spec.yaml" in str(e.value) and "supersample" in str(e.value) and "1..8" in str(e.value)


def test_hidden_quantity_must_be_declared(bounce_copy):
    _edit(bounce_copy / "spec.yaml", "gravity: {mode: fixed, value: 9.81}", "gravity: {id: [5, 15]}")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "quantities.gravity.mode" in str(e.value) and "conditioned" in str(e.value)


def test_ood_range_overlapping_id(bounce_copy):
    _edit(bounce_copy / "spec.yaml", "ood: [[0.0, 0.8], [3.5, 5.0]]", "ood: [[0.0, 1.5]]")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "quantities.speed.ood[0]" in str(e.value)


def test_unknown_camera(bounce_copy):
    _edit(bounce_copy / "spec.yaml", "cameras: [front, tilted]", "cameras: [front, above]")
    with pytest.raises(SceneError) as e:
        load_scene(bounce_copy)
    assert "cameras[1]" in str(e.value) and "above" in str(e.value)


def test_second_scene_with_same_name_refused(docs_scene, bounce_copy):
    _edit(bounce_copy / "spec.yaml", "name: bounce", "name: slider")
    with pytest.raises(SceneError) as e:
        worldsim.register_scene(bounce_copy)
    assert "already registered" in str(e.value) and "name" in str(e.value)


def test_unknown_scene():
    with pytest.raises(SceneError) as e:
        worldsim.make("bouncy")
    assert "bouncy" in str(e.value) and "bounce" in str(e.value)


def test_wrong_action_shape():
    env = worldsim.make("bounce", resolution=16)
    env.reset(seed=0)
    with pytest.raises(ActionError) as e:
        env.step(np.zeros(3, np.float32))
    assert "bounce" in str(e.value) and "action" in str(e.value) and "(0,)" in str(e.value)
    env.close()


@pytest.fixture(scope="module")
def docs_scene(tmp_path_factory):
    """The worked example of docs/scenes.md, written to a folder outside the package and registered once."""
    folder = tmp_path_factory.mktemp("docs") / "slider"
    folder.mkdir()
    assert {p.name for p in doc_files(ROOT / "docs" / "scenes.md", folder)} == {"slider.xml", "spec.yaml"}
    return worldsim.register_scene(folder)


@pytest.mark.parametrize("bad", [[np.nan], [np.inf], [5.0], "left"])
def test_bad_action_values(docs_scene, bad):
    env = worldsim.make(docs_scene, resolution=16)
    env.reset(seed=0)
    with pytest.raises(ActionError) as e:
        env.step(bad)
    assert "slider" in str(e.value) and "action" in str(e.value)
    env.close()


def test_docs_example_scene(docs_scene):
    """docs/scenes.md, followed literally: a new scene in a folder outside the package registers, passes
    check_env, renders real pixels, and its motor moves the paddle."""
    assert docs_scene == "slider" and "slider" in worldsim.scene_names()
    env = worldsim.make(docs_scene, resolution=(48, 64))
    check_env(env)
    frame, info = env.reset(seed=0)
    assert frame.shape == (48, 64, 3) and info["object_visible"].min() > 0.9
    start = info["object_pos"][0, 0]
    for _ in range(20):
        frame, *_ , info = env.step(np.ones(1, np.float32))
    assert info["object_pos"][0, 0] > start + 0.1
    env.close()

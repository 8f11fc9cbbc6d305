"""Widgets driven from Python: move a slider or press a button, then check the frame or status shown."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import worldsim
from worldsim.sim.registry import get_scene
from worldsim.viz.widgets import ActionController, ComparisonPlayer, FramePlayer, ParameterPanel, side_by_side


def _clip(t=5, h=8, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)


def _decoded(player) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(player.image.value)).convert("RGB"))


def test_frame_player_scrubber_shows_that_frame():
    clip = _clip()
    p = FramePlayer(clip, min_size=16)
    p.slider.value = 3
    assert p.index == 3 and np.array_equal(p.frame, clip[3])
    shown = _decoded(p)
    assert shown.shape == (16, 16, 3) and np.array_equal(shown[::2, ::2], clip[3])  # nearest-neighbour 2x


def test_comparison_player_shows_both_and_difference():
    a, b = _clip(seed=1), _clip(seed=2)
    p = ComparisonPlayer(a, b, min_size=8)
    p.slider.value = 2
    assert np.array_equal(p.frame, side_by_side(a, b)[2])
    w = a.shape[2]
    assert np.array_equal(p.frame[:, :w], a[2]) and np.array_equal(p.frame[:, -w:], np.abs(a[2].astype(int) - b[2]).astype(np.uint8))
    assert "frame 2" in p.label.value and "PSNR" in p.label.value
    same = ComparisonPlayer(a, a, min_size=8)
    assert "inf dB" in same.label.value and not same.frame[:, -w:].any()


def test_action_controller_drives_a_real_env(tmp_path):
    from conftest import ROOT, doc_files

    folder = tmp_path / "slider"
    folder.mkdir()
    doc_files(ROOT / "docs" / "scenes.md", folder)
    name = worldsim.register_scene(folder) if "slider" not in worldsim.scene_names() else "slider"
    env = worldsim.make(name, resolution=16)
    _, info = env.reset(seed=0)
    positions = [info["object_pos"][0, 0]]

    def step(action):
        positions.append(env.step(action)[4]["object_pos"][0, 0])

    c = ActionController(env.action_space, on_step=step)
    c.sliders[0].value = 1.0
    assert c.value.tolist() == [1.0]
    assert not c.tick()  # not playing: a tick does nothing
    c.step_button.click()
    c.play_button.value = True
    for _ in range(19):
        assert c.tick()
    assert c.steps_taken == 20 and positions[-1] > positions[0] + 0.05  # full push moves the paddle right
    env.close()


def test_parameter_panel_flags_out_of_distribution():
    scene = get_scene("bounce")
    seen = []
    panel = ParameterPanel(scene, on_change=seen.append)
    assert "inside" in panel.status.value and panel.outside == []
    panel.sliders["speed"].value = 4.5  # bounce's ood speed range is [3.5, 5.0]
    assert panel.outside == ["speed"] and "outside the training distribution" in panel.status.value
    assert seen[-1]["speed"][0] == pytest.approx(4.5)
    env = worldsim.make("bounce", resolution=16)
    _, info = env.reset(seed=0, options={"params": panel.params})
    assert np.linalg.norm(info["object_vel"][0]) == pytest.approx(4.5, rel=1e-6)
    panel.sliders["speed"].value = 2.0
    assert panel.outside == [] and "inside" in panel.status.value
    env.close()

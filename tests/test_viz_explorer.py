"""The rollout explorer and the classroom, driven from Python: move a slider, press a button, send a play tick, and
check the frame shown against MuJoCo and the world model run by hand from the same state with the same actions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from rollout_helpers import debug_weights

from worldsim.rollout import RolloutConfig, WorldModel, WorldModelEnv
from worldsim.rollout.starts import from_mujoco
from worldsim.sim.scene_env import SceneEnv
from worldsim.viz.classroom import OOD_BORDER, Classroom
from worldsim.viz.explorer import RolloutExplorer
from worldsim.viz.widgets import psnr, side_by_side


@pytest.fixture(scope="module")
def push(tmp_path_factory):
    return WorldModel.load(debug_weights(tmp_path_factory.mktemp("w") / "push.safetensors", "push"))


@pytest.fixture(scope="module")
def bounce(tmp_path_factory):
    return WorldModel.load(debug_weights(tmp_path_factory.mktemp("w") / "bounce.safetensors", "bounce"))


def _shown(widget_image, frame, min_size):
    img = np.asarray(Image.open(io.BytesIO(widget_image.value)).convert("RGB"))
    k = img.shape[0] // frame.shape[0]
    return img[::k, ::k][: frame.shape[0], : frame.shape[1]]


def _by_hand(model, seed, actions, steps=3, guidance=None):
    """MuJoCo and the world model from the same state, stepped with `actions`: the explorer's expected frames."""
    sim = SceneEnv("push", resolution=16, visibility=False)
    wm = WorldModelEnv(model, resolution=16, max_frames=10**9,
                       config=RolloutConfig(steps=steps, guidance=guidance or {}))
    st = from_mujoco(sim, seed, max(1, model.scene.train_frames - 1))
    wm.reset(seed=seed, options={"context": st.frames, "actions": st.actions, "params": st.params})
    real = pred = st.frames[-1]
    for a in actions:
        real, pred = sim.step(a)[0], wm.step(a)[0]
    sim.close()
    wm.close()
    return real, pred


def test_explorer_starts_both_from_the_same_frame(push):
    ex = RolloutExplorer(push, seed=2, resolution=16, min_size=16)
    w = 16
    assert np.array_equal(ex.frame[:, :w], ex.frame[:, w + 2:2 * w + 2]) and not ex.frame[:, -w:].any()
    assert np.array_equal(_shown(ex.image, ex.frame, 16), ex.frame)
    assert "frame 0" in ex.label.value
    ex.close()


def test_explorer_step_button_and_play_tick_apply_the_slider_action(push):
    ex = RolloutExplorer(push, seed=1, resolution=16, min_size=16, horizon=10)
    ex.controller.sliders[0].value = 0.5
    ex.controller.sliders[1].value = -0.3
    ex.controller.step_button.click()        # one step
    ex.play.value += 1                        # one play tick
    a = np.array([0.5, -0.3], np.float32)
    real, pred = _by_hand(push, 1, [a, a])
    assert ex.t == 2 and np.array_equal(ex.frame, side_by_side(real, pred))
    assert np.array_equal(_shown(ex.image, ex.frame, 16), ex.frame)
    assert ex.errors[-1] == pytest.approx(psnr(real, pred)) and f"{ex.errors[-1]:.1f} dB" in ex.label.value
    ex.close()


def test_explorer_horizon_stops_play(push):
    ex = RolloutExplorer(push, seed=0, resolution=16, horizon=2)
    ex.play.playing = True
    for _ in range(4):
        ex.play.value += 1
    assert ex.t == 2 and not ex.play.playing and len(ex.errors) == 2
    ex.close()


def test_explorer_steps_and_guidance_apply_on_reset(push):
    ex = RolloutExplorer(push, seed=3, resolution=16, horizon=5)
    ex.steps.value, ex.guidance.value, ex.seed.value = 2, 2.0, 4
    assert ex.applied.steps == 3  # not yet: the running rollout keeps its sampler
    ex.reset_button.click()
    assert ex.applied.steps == 2 and ex.applied.guidance == {"actions": 2.0} and ex.t == 0
    assert "2 denoising steps" in ex.label.value
    a = np.array([0.2, 0.1], np.float32)
    ex.step(a)
    real, pred = _by_hand(push, 4, [a], steps=2, guidance={"actions": 2.0})
    assert np.array_equal(ex.frame, side_by_side(real, pred))
    ex.close()


def test_classroom_shows_mujoco_answer_and_flags_ood(bounce):
    c = Classroom(bounce, seed=0, frames=6, resolution=16, min_size=16)
    assert c.outside == [] and "inside" in c.banner.value
    c.panel.sliders["speed"].value = 4.5  # bounce trains on 1-3 m/s
    c.run_button.click()
    assert c.outside == ["speed"] and "OUTSIDE THE TRAINING DISTRIBUTION" in c.banner.value
    env = SceneEnv("bounce", resolution=16, visibility=False)
    truth = from_mujoco(env, 0, 6, params=c.panel.params).frames
    env.close()
    assert np.array_equal(c.truth, truth) and np.array_equal(c.prediction[:c.context], truth[:c.context])
    c.player.slider.value = 5
    assert np.array_equal(c.player.frame, side_by_side(truth, c.prediction)[5])
    assert "outside training data" in c.player.label.value and c.player.image.layout.border == OOD_BORDER
    line = c.figure.axes[0].lines[0].get_xydata()        # MuJoCo, object 0: the parsed centres, frame by frame
    assert np.allclose(line, c.paths["MuJoCo"][:, 0], equal_nan=True)
    c.panel.sliders["speed"].value = 2.0
    c.run()
    assert c.outside == [] and "inside" in c.banner.value and not c.player.image.layout.border
    c.close()

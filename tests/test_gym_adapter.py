"""Any gymnasium env that renders rgb_array is usable like a scene: Reacher-v5 through worldsim.make."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim
from worldsim.errors import SceneError
from worldsim.sim.camera import project
from worldsim.sim.gym_adapter import GymSceneAdapter


@pytest.fixture
def reacher():
    env = worldsim.make("Reacher-v5", resolution=(48, 80))
    yield env
    env.close()


def test_frames_and_info_like_a_scene(reacher):
    assert isinstance(reacher, GymSceneAdapter)
    frame, info = reacher.reset(seed=0)
    assert frame.shape == (48, 80, 3) and frame.dtype == np.uint8 and reacher.observation_space.contains(frame)
    assert frame.std() > 5  # a real rendering, not a blank
    data = reacher.unwrapped.data
    assert np.array_equal(info["qpos"], data.qpos) and np.array_equal(info["qvel"], data.qvel)
    assert info["camera"] == "free" and info["params"] == {} and info["frame"] == 0
    assert info["events"] == [{"frame": 0, "type": "shot", "camera": "free"}]
    assert not any(k.startswith("object_") for k in info)  # no declared objects: absent, not faked
    frame, reward, terminated, truncated, info = reacher.step(reacher.action_space.sample())
    assert info["frame"] == 1 and info["time"] == pytest.approx(data.time) and "reward_dist" in info["env_info"]


def test_camera_projects_the_target_onto_its_pixels():
    """The recorded intrinsics/extrinsics are those of the frame: the red target (1 cm) projects onto red pixels,
    and the arena's centre, a few pixels away, does not."""
    env = worldsim.make("Reacher-v5", resolution=(240, 400))
    for seed in range(3):
        frame, info = env.reset(seed=seed)
        m, d = env.unwrapped.model, env.unwrapped.data
        red = (frame[..., 0].astype(int) > frame[..., 1] + 60) & (frame[..., 0].astype(int) > frame[..., 2] + 60)
        target = d.geom_xpos[m.geom("target").id]
        u, v = project(target, info["intrinsics"], info["extrinsics"])
        rows, cols = np.nonzero(red)
        near = np.hypot(cols + 0.5 - u, rows + 0.5 - v) < 3
        assert near.sum() >= 3, (seed, u, v)
        # the red pixels near the projection are the target's: their centroid is within 1 px of it
        assert np.hypot(cols[near].mean() + 0.5 - u, rows[near].mean() + 0.5 - v) < 1.0
    env.close()


def test_state_round_trip(reacher):
    """qpos/qvel from info restore the state: the frame and the continuation are reproduced."""
    reacher.reset(seed=2)
    reacher.action_space.seed(2)
    actions = [reacher.action_space.sample() for _ in range(10)]
    for a in actions[:5]:
        frame5, *_, info5 = reacher.step(a)
    later = [reacher.step(a)[0] for a in actions[5:]]
    frame, info = reacher.set_state(info5["qpos"], info5["qvel"])
    assert np.array_equal(frame, frame5)
    again = [reacher.step(a)[0] for a in actions[5:]]
    assert all(np.array_equal(x, y) for x, y in zip(later, again))


def test_resolution_and_checker():
    env = worldsim.make("Reacher-v5", resolution=24)
    frame, _ = env.reset(seed=0)
    assert frame.shape == (24, 24, 3)
    check_env(env, skip_render_check=True)
    env.close()
    with pytest.raises(SceneError, match="resolution"):
        worldsim.make("Reacher-v5", resolution=(3, 3))

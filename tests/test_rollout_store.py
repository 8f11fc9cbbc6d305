"""Batch generation into a zarr store in the recording schema, marked as generated (issue 7)."""

from __future__ import annotations

import numpy as np
import pytest
from rollout_helpers import debug_weights

from worldsim.data.store import open_store
from worldsim.errors import ActionError, ConfigError
from worldsim.rollout import WorldModel, generate_store
from worldsim.sim.scene_env import SceneEnv


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return WorldModel.load(debug_weights(tmp_path_factory.mktemp("w") / "push.safetensors", "push"))


def test_generated_store_from_fresh_mujoco_states(model, tmp_path):
    out = tmp_path / "gen.zarr"
    generate_store(model, out, episodes=3, frames=6, context=2, resolution=16, batch=2, policy="uniform", seed=1)
    s = open_store(out)  # the reader's schema checks pass
    assert s.attrs["generated"] is True and s.attrs["scene"] == "push"
    gen = dict(s.root["train"].attrs)["generated"]
    assert gen["context_frames"] == 2 and gen["sha256"] and gen["source"] == "mujoco"
    assert list(s.committed("train")) == [0, 1, 2]
    ep = s.episode("train", 1)
    assert ep["frames"].shape == (6, 16, 16, 3)
    assert np.isfinite(ep["qpos"][:2]).all() and np.isnan(ep["qpos"][2:]).all()  # state known for real frames only
    assert ep["caption"] == "" and ep["params"]["count"] in (2.0, 3.0)
    assert np.abs(ep["actions"][2:5]).max() > 0 and (ep["actions"][-1] == 0).all()
    # the context frames are MuJoCo's: re-simulate the recorder's seed for this episode
    from worldsim.data.splits import episode_seeds

    env = SceneEnv("push", resolution=16)
    obs, _ = env.reset(seed=episode_seeds(1, "train", 1).env)
    assert np.array_equal(obs, ep["frames"][0])
    env.close()
    gen2 = tmp_path / "again.zarr"
    generate_store(model, gen2, episodes=3, frames=6, context=2, resolution=16, batch=3, policy="uniform", seed=1)
    assert np.array_equal(open_store(gen2).episode("train", 1)["frames"], ep["frames"])  # batch size changes nothing


def test_generated_store_from_a_store_under_its_actions(model, tmp_path):
    src = tmp_path / "src.zarr"
    generate_store(model, src, episodes=2, frames=5, context=2, resolution=16, split="test")
    out = tmp_path / "gen.zarr"
    given = np.full((2, 4, 2), 0.3, np.float32)
    generate_store(model, out, episodes=2, frames=5, context=3, source=str(src), source_split="test",
                   actions=given, resolution=16)
    s, t = open_store(out), open_store(src)
    assert np.array_equal(s.episode("train", 0)["frames"][:3], t.episode("test", 0)["frames"][:3])
    assert np.allclose(s.episode("train", 0)["actions"][2:4], 0.3)
    generate_store(model, tmp_path / "g2.zarr", episodes=1, frames=5, source=str(src), source_split="test",
                   actions="store", resolution=16)
    with pytest.raises(ActionError):
        generate_store(model, tmp_path / "bad.zarr", episodes=2, frames=5, actions=np.full((2, 4, 2), 9.0),
                       resolution=16)
    with pytest.raises(ConfigError, match="nothing to generate"):
        generate_store(model, tmp_path / "bad2.zarr", episodes=1, frames=3, context=3, resolution=16)

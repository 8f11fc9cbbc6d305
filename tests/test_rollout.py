"""WorldModelEnv (gymnasium), its vector form, cached autoregressive rollouts, the reward read from frames, and the
errors for bad input (issue 7)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from rollout_helpers import debug_weights

from worldsim.errors import ActionError, ConfigError, WeightsError
from worldsim.rollout import Rollout, RolloutConfig, WorldModel, WorldModelEnv, WorldModelVectorEnv, rollout
from worldsim.rollout.reward import SceneReader
from worldsim.sim.scene_env import SceneEnv


@pytest.fixture(scope="module")
def push_weights(tmp_path_factory):
    return debug_weights(tmp_path_factory.mktemp("w") / "push.safetensors", "push")


@pytest.fixture(scope="module")
def model(push_weights):
    return WorldModel.load(push_weights)


def test_import_pulls_in_no_training_code():
    code = ("import sys, worldsim.rollout, worldsim.rollout.env, worldsim.rollout.generate, worldsim.rollout.planner; "
            "bad = [m for m in sys.modules if m.startswith(('lightning', 'worldsim.training', 'pytorch_lightning'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_check_env_passes_and_info_says_what_is_generated(push_weights):
    env = WorldModelEnv(push_weights, resolution=16)
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs) and info["generated"] is False and info["source"] == "mujoco"
    real = SceneEnv("push", resolution=16)
    assert env.action_space == real.action_space  # the scene's own action space
    assert np.array_equal(obs, _mujoco_context(real, 3, 3)[-1])  # reset shows MuJoCo's frame of that seed
    obs2, reward, terminated, truncated, info = env.step(np.array([0.3, -0.2], np.float32))
    assert info["generated"] is True and info["frame"] == 3 and not terminated and not truncated
    assert obs2.shape == (16, 16, 3) and obs2.dtype == np.uint8 and isinstance(reward, float)
    assert info["object_pos"].shape == (3, 3) and info["reward_known"]
    real.close()
    env.close()


def test_registered_with_gymnasium(push_weights):
    import warnings

    import gymnasium

    env = gymnasium.make("worldsim/WorldModel-v0", weights=str(push_weights), resolution=16)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    assert not [w for w in caught if "gymnasium" in str(w.filename) or "WARN" in str(w.message)], \
        [str(w.message) for w in caught]
    env.close()


def _mujoco_context(env, seed, k):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(k - 1):
        out.append(env.step(np.zeros(2, np.float32))[0])
    return np.stack(out)


def test_reset_from_context_store_and_mujoco(push_weights, tmp_path):
    from worldsim.data.recorder import RecordConfig, record

    store = tmp_path / "push.zarr"
    record(RecordConfig(store=str(store), scene="push", episodes=1, frames=6, resolution=16, split="test",
                        progress=False))
    env = WorldModelEnv(push_weights, resolution=16)
    ctx = np.random.default_rng(0).integers(0, 255, (2, 16, 16, 3), dtype=np.uint8)
    obs, info = env.reset(seed=0, options={"context": ctx})
    assert np.array_equal(obs, ctx[-1]) and info["source"] == "context" and not info["reward_known"]
    obs, info = env.reset(seed=0, options={"store": str(store), "split": "test", "episode": 0, "start": 1,
                                           "frames": 3})
    from worldsim.data.store import open_store

    assert np.array_equal(obs, open_store(store).episode("test", 0)["frames"][3]) and info["source"] == "store"
    assert info["reward_known"]  # the store's params give the goal
    obs, info = env.reset(seed=1, options={"mujoco": True, "frames": 2})
    assert info["source"] == "mujoco" and info["frame"] == 1
    real = SceneEnv("push", resolution=16)  # an exact MuJoCo state, rendered by the scene
    _, rinfo = real.reset(seed=7)
    for _ in range(5):
        frame, _, _, _, rinfo = real.step(np.array([0.4, 0.1], np.float32))
    obs, info = env.reset(seed=0, options={"state": {"qpos": rinfo["qpos"], "qvel": rinfo["qvel"]},
                                           "params": rinfo["params"], "frames": 1})
    assert np.array_equal(obs, frame) and info["source"] == "mujoco"
    real.close()
    with pytest.raises(ConfigError, match="params"):
        env.reset(seed=0, options={"state": {"qpos": rinfo["qpos"], "qvel": rinfo["qvel"]}})
    with pytest.raises(ConfigError, match="unknown reset option"):
        env.reset(seed=0, options={"bogus": 1})


def test_vector_env_steps_a_batch_and_autoresets(push_weights):
    v = WorldModelVectorEnv(push_weights, 3, resolution=16, max_frames=5)
    obs, info = v.reset(seed=0)
    assert obs.shape == (3, 16, 16, 3) and v.observation_space.contains(obs)
    for i in range(2):
        obs, rew, term, trunc, info = v.step(v.action_space.sample())
        assert obs.shape == (3, 16, 16, 3) and rew.shape == (3,) and info["generated"].all()
    assert trunc.all()  # 3 context frames + 2 generated = max_frames
    obs, rew, term, trunc, info = v.step(np.zeros((3, 2), np.float32))  # next-step autoreset
    assert not info["generated"].any() and not trunc.any()
    with pytest.raises(ActionError):
        v.step(np.zeros((2, 2), np.float32))


@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
def test_vector_env_matches_single_rollouts(model, sampler):
    """Batched rollouts equal one-at-a-time rollouts (same context, seed, actions): batching changes nothing, also
    for the ancestral sampler, whose fresh noise comes from each rollout's own generator."""
    rng = np.random.default_rng(1)
    ctx = rng.integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
    acts = rng.uniform(-0.6, 0.6, (2, 4, 2)).astype(np.float32)
    cfg = RolloutConfig(sampler=sampler)
    both = rollout(model, ctx, acts, seed=5, config=cfg)
    one = rollout(model, ctx[:1], acts[:1], seed=5, config=cfg)
    assert both.shape == (2, 4, 16, 16, 3)
    assert np.abs(both[0].astype(int) - one[0]).max() <= 1  # float reductions differ by batch only in rounding


def test_ten_times_training_length_stays_finite_with_flat_cache(model):
    T = 10 * model.scene.train_frames
    ctx = np.random.default_rng(0).integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
    r = Rollout(model, ctx, config=RolloutConfig(window=3), seed=0)
    sizes = []
    for t in range(T):
        f = r.step(np.zeros((2, 2), np.float32))
        assert f.dtype == np.uint8
        sizes.append(sum(kv[0].numel() + kv[1].numel() for kv in r.cache.layers))
    assert r.frames_done == 3 + T and r.cache.frames == 3 + T and r.cache.cached == 3
    assert len(set(sizes)) == 1  # the KV cache never grows: memory is flat however long the rollout
    assert np.isfinite(r.last).all() and 0 < r.last.std()  # not collapsed to a constant


def test_rollout_is_seeded_and_follows_actions(model):
    ctx = np.random.default_rng(2).integers(0, 255, (1, 3, 16, 16, 3), dtype=np.uint8)
    a = np.full((1, 3, 2), 0.5, np.float32)
    x1, x2 = rollout(model, ctx, a, seed=1), rollout(model, ctx, a, seed=1)
    assert np.array_equal(x1, x2)
    assert not np.array_equal(x1, rollout(model, ctx, -a, seed=1))  # actions condition the frames
    assert not np.array_equal(x1, rollout(model, ctx, a, seed=2))
    shots = Rollout(model, ctx, cameras=["top", "top", "angled"], seed=1)  # context cameras per frame
    cut = shots.step(a[:, 0]), shots.step(a[:, 1], camera="top")  # a cut back to the first camera
    assert cut[0].shape == (1, 16, 16, 3)
    for cfg in (RolloutConfig(sampler="heun", steps=2), RolloutConfig(sampler="euler_a"),
                RolloutConfig(context_sigma=0.05), RolloutConfig(fuse_write=False),
                RolloutConfig(steps=1, guidance={"actions": 2.0})):
        out = rollout(model, ctx, a, config=cfg, seed=1)
        assert out.shape == (1, 3, 16, 16, 3)


def test_weights_carry_their_default_steps(model, push_weights, tmp_path):
    """A file that records `sampler.steps` (`worldsim export --steps`) rolls out with them unless the caller says
    otherwise: its default rollout is an unrecorded file's at those steps; a bad record is refused naming the field."""
    from worldsim.weights import load_weights, save_weights

    tensors, meta = load_weights(push_weights)
    two = WorldModel.load(save_weights(tmp_path / "two.safetensors", tensors, {**meta, "sampler": {"steps": 2}}))
    assert model.steps == 3 and two.steps == 2
    ctx = np.random.default_rng(5).integers(0, 255, (1, 3, 16, 16, 3), dtype=np.uint8)
    a = np.full((1, 3, 2), 0.3, np.float32)
    own = rollout(two, ctx, a, seed=1)
    np.testing.assert_array_equal(own, rollout(model, ctx, a, config=RolloutConfig(steps=2), seed=1))
    assert not np.array_equal(own, rollout(model, ctx, a, seed=1))  # 3 steps draw other frames
    np.testing.assert_array_equal(rollout(two, ctx, a, config=RolloutConfig(steps=3), seed=1),
                                  rollout(model, ctx, a, seed=1))  # the caller's steps win
    assert Rollout(two, ctx).config.steps == 2 and RolloutConfig().resolved(model).steps == 3
    for bad, field in (({"steps": 0}, "sampler.steps"), ({"steps": "2"}, "sampler.steps"), ({"step": 2}, "sampler"),
                       ({"steps": 2, "rollout_after": 0}, "sampler.rollout_after")):
        path = save_weights(tmp_path / "bad.safetensors", tensors, {**meta, "sampler": bad})
        with pytest.raises(WeightsError) as e:
            WorldModel.load(path)
        assert e.value.field == field and str(path) in str(e.value)


@pytest.mark.parametrize("cfg", [RolloutConfig(), RolloutConfig(sampler="euler_a", context_sigma=0.05)])
def test_common_noise_compares_actions_under_one_draw(model, cfg):
    """With common noise, rollouts that differ only in their actions differ only because of them: equal actions give
    equal frames (each own stream would not), and rollout 0 is the one it would be alone."""
    one = np.random.default_rng(3).integers(0, 255, (1, 2, 16, 16, 3), dtype=np.uint8)
    ctx = np.broadcast_to(one, (3, *one.shape[1:]))                                         # (3, 2, H, W, 3)
    a = np.repeat(np.array([[0.5, 0.5], [0.5, 0.5], [-0.5, 0.2]], np.float32)[:, None], 3, axis=1)  # (3, 3, 2)
    common = Rollout(model, ctx, config=cfg, seed=4, common_noise=True).run(a)                       # (3, 3, H, W, 3)
    own = Rollout(model, ctx, config=cfg, seed=4).run(a)
    assert np.array_equal(common[0], common[1]) and not np.array_equal(common[0], common[2])
    assert not np.array_equal(own[0], own[1])
    np.testing.assert_array_equal(common[0], own[0])


@pytest.mark.parametrize("sampler", ["euler", "heun", "euler_a"])
def test_fused_cache_write_matches_a_separate_clean_write(model, sampler):
    """Writing the cache during the last denoising step (input at sigma_min) instead of a separate clean pass
    changes the next frames by at most a few levels, for every sampler (Heun's, which visits the last level twice,
    once wrote the frame on its first visit and then denoised it against itself: E133)."""
    ctx = np.random.default_rng(3).integers(0, 255, (1, 3, 16, 16, 3), dtype=np.uint8)
    a = np.zeros((1, 4, 2), np.float32)
    fused = rollout(model, ctx, a, config=RolloutConfig(sampler=sampler, fuse_write=True), seed=4).astype(int)
    clean = rollout(model, ctx, a, config=RolloutConfig(sampler=sampler, fuse_write=False), seed=4).astype(int)
    assert np.array_equal(fused[:, 0], clean[:, 0])  # the first new frame sees only the context
    assert np.abs(fused - clean).mean() < 3.0
    if sampler == "heun":  # no write to fuse into: the clean pass, bit for bit
        assert np.array_equal(fused, clean)


def test_reward_read_from_frames_matches_the_scene():
    """On MuJoCo's own 32 px frames the parsed positions give the scene's reward to within a pixel or two."""
    env = SceneEnv("push", resolution=32)
    reader = SceneReader("push", (32, 32), "top")
    errs, rew_err = [], []
    for seed in range(4):
        obs, info = env.reset(seed=seed)
        for t in range(5):
            obs, reward, _, _, info = env.step(env.action_space.sample())
            r = reader.read(obs[None])
            act = info["object_active"]
            assert r.found[0][act].all()
            errs.append(np.abs(r.pos[0][act] - info["object_pos"][act])[:, :2].max())
            rew, dist, ok = reader.reward(r.pos, reader.goal(info["params"]))
            rew_err.append(abs(rew[0] - reward))
    env.close()
    metres_per_px = 2 * 3.2 * np.tan(np.radians(20)) / 32
    assert max(errs) < 1.5 * metres_per_px and max(rew_err) < 2 * metres_per_px


def test_bad_input_gives_clear_errors(push_weights, model, tmp_path):
    env = WorldModelEnv(push_weights, resolution=16)
    env.reset(seed=0)
    for bad, msg in ((np.zeros(3, np.float32), "shape"), (np.array(["a", "b"]), "dtype"),
                     (np.array([0.0, 5.0], np.float32), "outside"), (np.array([np.nan, 0.0]), "NaN")):
        with pytest.raises(ActionError, match=msg):
            env.step(bad)
    ctx = np.zeros((1, 3, 8, 8, 3), np.uint8)
    with pytest.raises(WeightsError, match="trained at") as e:
        Rollout(model, ctx)  # 8x8 is not a trained resolution
    assert e.value.field == "scene.resolution"
    with pytest.raises(ConfigError, match="frames are 16x16, expected 32x32"):
        Rollout(model, np.zeros((1, 3, 16, 16, 3), np.uint8), resolution=(32, 32))
    nan = np.zeros((1, 3, 16, 16, 3), np.float32)
    nan[0, 1, 2, 3, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        Rollout(model, nan)
    with pytest.raises(ConfigError, match="frames"):
        env.reset(options={"context": np.zeros((3, 32, 32, 3), np.uint8)})
    with pytest.raises(ConfigError, match="steps"):
        Rollout(model, np.zeros((1, 3, 16, 16, 3), np.uint8), config=RolloutConfig(steps=0))
    with pytest.raises(ConfigError, match="guidance"):
        Rollout(model, np.zeros((1, 3, 16, 16, 3), np.uint8), config=RolloutConfig(guidance={"actions": -1.0}))
    with pytest.raises(WeightsError) as e:
        WorldModelEnv(push_weights, scene="bounce")
    assert e.value.field == "scene.name"
    with pytest.raises(WeightsError) as e:
        WorldModelEnv(push_weights, frame_skip=10)
    assert e.value.field == "scene.frame_skip"
    with pytest.raises(WeightsError) as e:
        WorldModelEnv(push_weights, resolution=64)
    assert e.value.field == "scene.resolution"
    with pytest.raises(WeightsError) as e:
        WorldModelEnv(push_weights, camera="front")
    assert e.value.field == "scene.cameras"
    with pytest.raises(WeightsError):  # a file changed after export is refused by its digest
        bad = tmp_path / "bad.safetensors"
        data = bytearray(push_weights.read_bytes())
        data[-5] ^= 0xFF
        bad.write_bytes(bytes(data))
        WorldModel.load(bad)


def test_reemergence_vs_window_runs_on_occlusion(tmp_path):
    from worldsim.rollout import reemergence_vs_window

    m = WorldModel.load(debug_weights(tmp_path / "occ.safetensors", "occlusion"))
    out = reemergence_vs_window(m, [1, 3], episodes=1, context=3, resolution=16)
    assert set(out) == {1, 3}
    assert all(0.0 <= out[w]["reemergence_rate"] <= 1.0 for w in out)  # the rollout spans an emergence
    with pytest.raises(WeightsError):
        reemergence_vs_window(WorldModel.load(debug_weights(tmp_path / "p.safetensors", "push")), [2])


def test_world_model_is_an_evaluation_predictor(push_weights):
    from worldsim.eval.evaluate import check_predictor, load_predictor
    from worldsim.eval.predictor import Conditioning, Predictor

    p = load_predictor(str(push_weights), "push")  # the evaluation's loader reaches worldsim.rollout
    assert isinstance(p, Predictor) and not p.privileged and p.scenes == ("push",)
    check_predictor(p, "push", (16, 16)) if p.resolution else None
    ctx = np.random.default_rng(0).integers(0, 255, (2, 3, 16, 16, 3), dtype=np.uint8)
    acts = np.zeros((2, 3 + 4 - 1, 2), np.float32)
    out = p.predict(ctx, acts, 4, conditioning=Conditioning("push", 25.0, "top"), seed=0)
    assert out.shape == (2, 4, 16, 16, 3) and out.dtype == np.uint8
    assert p.identity()["sha256"]
    with pytest.raises(WeightsError):
        load_predictor(str(push_weights), "bounce")

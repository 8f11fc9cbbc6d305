"""CEM planning on push (issue 7): with MuJoCo itself as the model it must solve most episodes; the same planner
runs with a world model as its model."""

from __future__ import annotations

import numpy as np
import pytest
from rollout_helpers import debug_weights

import worldsim
from worldsim.errors import ConfigError
from worldsim.rollout import CEMConfig, CEMPlanner, MuJoCoDynamics, WorldModel, WorldModelDynamics, run_episode
from worldsim.rollout.planner import PairedDynamics, plan_cost
from worldsim.sim.scene_env import SceneEnv

FAST = CEMConfig(horizon=6, repeat=5, population=32, elites=4, iterations=3, replan=10)


def test_planner_with_mujoco_as_its_model_solves_push():
    env = SceneEnv("push", resolution=16, visibility=False)
    planner = CEMPlanner(MuJoCoDynamics(), env.action_space.low, env.action_space.high, FAST, seed=0)
    results = [run_episode(env, planner, seed=s) for s in range(5)]
    env.close()
    solved = sum(r.success for r in results)
    assert solved >= 4, [(r.success, r.frames, round(r.final_distance, 3)) for r in results]
    for r in results:
        assert r.video.shape[0] == r.frames + 1 and (not r.success or r.final_distance <= 0.08)


def test_mujoco_imagination_matches_execution():
    """The imagined final block position for the chosen plan is where MuJoCo puts the block executing it."""
    env = SceneEnv("push", resolution=16, visibility=False)
    env.reset(seed=2)
    dyn = MuJoCoDynamics()
    acts = np.tile(np.array([0.5, 0.2], np.float32), (1, 10, 1))
    cfg = CEMConfig(repeat=10, horizon=1)
    cost = dyn.costs(env, [], acts, cfg)
    for a in acts[0]:
        _, _, _, _, info = env.step(a)
    agent, obj = 0, 1
    pos = info["object_pos"][None, None]
    goal = env.data.site_xpos[env.scene.goal_site]
    from worldsim.rollout.planner import _reach

    assert cost[0] == pytest.approx(plan_cost(pos, goal, env.scene, cfg.shaping, _reach(env))[0], abs=1e-6)
    env.close()


def test_planner_runs_with_a_world_model(tmp_path):
    m = WorldModel.load(debug_weights(tmp_path / "push.safetensors", "push"))
    env = SceneEnv("push", resolution=16, visibility=False)
    cfg = CEMConfig(horizon=2, repeat=2, population=4, elites=2, iterations=1, replan=2)
    planner = CEMPlanner(WorldModelDynamics(m), env.action_space.low, env.action_space.high, cfg, seed=0)
    r = run_episode(env, planner, seed=0, max_frames=4)
    assert r.frames == 4 and r.video.shape == (5, 16, 16, 3)
    env.close()


def test_world_model_planner_keeps_a_lost_block_where_the_real_frames_last_showed_it(tmp_path):
    """The world-model cost reads where objects start from the real frames; a block an imagined (or real) frame stops
    showing stays where it was last seen, not at the scene's resting position (a lost block scored as sent home)."""
    dyn = WorldModelDynamics(WorldModel.load(debug_weights(tmp_path / "push.safetensors", "push")))
    env = SceneEnv("push", resolution=32, visibility=False)
    obs, info = env.reset(seed=0)
    env.close()
    block = info["object_pos"][1]                                                           # block0's true position
    seen = dyn.observed(env, [obs])[1]
    assert np.linalg.norm((seen - block)[:2]) < 0.05, (seen, block)
    assert np.linalg.norm((dyn.reader.rest[1] - block)[:2]) > 0.1  # the resting position would be far off
    hidden = obs.copy()
    red = np.abs(hidden.astype(int) - env.scene.spec.objects[1].colour).max(-1) < 60        # block0's pixels
    assert red.any()
    hidden[red] = hidden[0, 0]
    assert np.allclose(dyn.observed(env, [obs, hidden])[1], seen)


def test_world_model_particles_score_a_candidate_by_its_mean_over_independent_draws(tmp_path):
    """`particles=P` imagines every candidate P times (one batch of N P rollouts) and returns the mean cost per
    candidate: the same numbers as P repeated candidates imagined once, averaged."""
    m = worldsim.load("push")  # the shipped model: its imagined blocks move, so costs differ by candidate and draw
    env = SceneEnv("push", resolution=32, visibility=False)
    obs, _ = env.reset(seed=1)
    cfg = CEMConfig(horizon=2, repeat=2, population=3, elites=1, iterations=1, replan=2)
    acts = np.random.default_rng(0).uniform(-1, 1, (3, 4, 2)).astype(np.float32)           # (N, T, A)
    mean = WorldModelDynamics(m, seed=5, particles=3).costs(env, [obs], acts, cfg)
    each = WorldModelDynamics(m, seed=5).costs(env, [obs], np.repeat(acts, 3, axis=0), cfg)   # (N P,)
    env.close()
    assert mean.shape == (3,)
    np.testing.assert_allclose(mean, each.reshape(3, 3).mean(1))
    assert not np.allclose(each.reshape(3, 3), mean[:, None])  # the draws differ: the mean is over real spread
    with pytest.raises(ConfigError, match="particles"):
        WorldModelDynamics(m, particles=0)
    with pytest.raises(ConfigError, match="common_noise"):
        WorldModelDynamics(m, particles=2, common_noise=True)


def test_planner_acts_on_the_best_candidate_or_the_final_elite_mean():
    """`act="best"` executes the lowest-cost candidate of every iteration; `act="mean"` the mean of the last
    iteration's elites (PlaNet's choice for a sampled model, where the minimum favours lucky draws)."""
    env = SceneEnv("push", resolution=16, visibility=False)
    plans, logs = {}, {}
    for act in ("best", "mean"):
        cfg = CEMConfig(horizon=3, repeat=5, population=12, elites=3, iterations=2, replan=10, act=act)
        dyn = PairedDynamics(MuJoCoDynamics(), MuJoCoDynamics())
        env.reset(seed=4)
        plans[act] = CEMPlanner(dyn, env.action_space.low, env.action_space.high, cfg, seed=1).plan(env, [])
        logs[act] = dyn.log
    env.close()
    assert len(logs["best"]) == 2 and all(np.array_equal(c, r) for _, c, r in logs["best"])  # same model: same costs
    for (a, c, _), (b, d, _) in zip(logs["best"], logs["mean"]):
        assert np.array_equal(a, b) and np.array_equal(c, d)  # same seed, deterministic model: the same search
    every = np.concatenate([a for a, _, _ in logs["best"]])                                 # (2N, T, A)
    costs = np.concatenate([c for _, c, _ in logs["best"]])
    np.testing.assert_allclose(plans["best"], every[np.argmin(costs)], atol=1e-6)  # plans are float32
    last, c, _ = logs["mean"][-1]
    np.testing.assert_allclose(plans["mean"], last[np.argsort(c)[:3]].mean(0), atol=1e-6)
    assert not np.allclose(plans["best"], plans["mean"])
    with pytest.raises(ConfigError, match="act"):
        CEMConfig(act="median").check()


def test_planner_config_errors():
    with pytest.raises(ConfigError):
        CEMConfig(population=4, elites=8).check()
    with pytest.raises(ConfigError):
        CEMConfig(horizon=0).check()

"""The action-response probe (issue 9, `push`): under mirrored actions MuJoCo's pusher goes elsewhere; the exact
simulator follows it, a predictor that ignores actions (copy-last) does not, and a bad request is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from worldsim.cli import main as cli_main
from worldsim.eval import response as R
from worldsim.eval.paired import fresh_episodes
from worldsim.eval.predictor import CopyLast

K, H = 3, 12


@pytest.fixture(scope="module")
def push_episodes():
    return fresh_episodes("push", 4, K + H, seed=0)


def test_mirrored_negates_only_the_actions_after_the_context(push_episodes):
    ep = push_episodes
    flipped = R.mirrored(ep, K)
    assert np.array_equal(flipped.actions[:, :K - 1], ep.actions[:, :K - 1])
    assert np.array_equal(flipped.actions[:, K - 1:], -ep.actions[:, K - 1:])
    assert np.array_equal(flipped.frames, ep.frames) and flipped.actions is not ep.actions


def test_the_exact_simulator_follows_the_actions_and_copy_last_ignores_them(push_episodes):
    out = R.run("push", {"copy-last": CopyLast()}, push_episodes, context=K, horizon=H, n_resamples=100)
    assert out["agents"] == ["pusher"] and out["checked"] >= 3
    exact, copy = out["scores"]["mujoco (exact)"], out["scores"]["copy-last"]
    assert exact["separation_px"]["value"] > 1.0  # mirrored actions move MuJoCo's pusher measurably apart
    assert exact["separation_error_px"]["value"] == 0.0 and exact["response_pass_rate"]["value"] == 1.0
    assert exact["separation_ratio"]["value"] == pytest.approx(1.0)
    assert copy["separation_px"]["value"] == 0.0 and copy["separation_ratio"]["value"] == 0.0
    assert copy["separation_error_px"]["value"] == pytest.approx(exact["separation_px"]["value"])
    assert copy["response_pass_rate"]["value"] < 1.0


def test_evaluate_reports_the_response_probe_and_refuses_a_scene_without_actions(capsys, tmp_path):
    from worldsim.eval.tables import consistency_markdown

    out = tmp_path / "push"
    assert cli_main(["evaluate", "--scene", "push", "--episodes", "2", "--context", str(K), "--horizon", "6",
                     "--videos", "1", "--probes", "response", "--out", str(out)]) == 0
    assert "Action response" in (out / "report.html").read_text()
    assert "| push | response | copy-last |" in consistency_markdown([out / "metrics.json"])
    assert cli_main(["evaluate", "--scene", "bounce", "--probes", "response", "--episodes", "1",
                     "--out", str(tmp_path / "b")]) != 0
    assert "--probes" in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_where_the_actions_turn_the_camera_every_object_is_an_agent():
    """`orbit` actuates no object: its actions orbit the camera, so each still object moves on screen with them."""
    episodes = fresh_episodes("orbit", 3, K + H, seed=0)
    out = R.run("orbit", {"copy-last": CopyLast()}, episodes, context=K, horizon=H, n_resamples=100)
    assert out["agents"] == ["ball", "cube", "can"] and out["checked"] >= 2
    exact, copy = out["scores"]["mujoco (exact)"], out["scores"]["copy-last"]
    assert exact["separation_px"]["value"] > 1.0 and exact["separation_error_px"]["value"] == 0.0
    assert copy["separation_px"]["value"] == 0.0 and copy["response_pass_rate"]["value"] < 1.0


def test_action_guidance_reaches_the_world_models_rollouts(capsys, tmp_path):
    """`--guidance-actions` scales the actions' effect in every sampled frame (classifier-free guidance); a bad scale
    is refused before anything is written."""
    from rollout_helpers import debug_weights
    from worldsim.eval.evaluate import EvalConfig, evaluate

    weights = str(debug_weights(tmp_path / "push.safetensors", "push"))
    base = EvalConfig(scene="push", model=weights, episodes=2, context=K, horizon=3, resolution=16, videos=0,
                      baselines=(), bootstrap=50)
    psnr = [evaluate(dataclasses.replace(base, guidance_actions=g)).figures["model"]["summary"]["psnr@1"]["value"]
            for g in (1.0, 1.0, 3.0)]
    assert psnr[0] == psnr[1] != psnr[2]
    out = tmp_path / "bad"
    assert cli_main(["evaluate", "--scene", "push", "--model", weights, "--guidance-actions", "-1", "--episodes", "1",
                     "--out", str(out)]) != 0
    assert "guidance.actions" in capsys.readouterr().err and not out.exists()

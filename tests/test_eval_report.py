"""`worldsim evaluate` end to end: metrics.json and a self-contained report.html whose every video decodes; and
clear errors, naming the field, for bad input (issue 8, "Must show")."""

from __future__ import annotations

import base64
import io
import json
import re

import imageio.v3 as iio
import numpy as np
import pytest

from worldsim.cli import main as cli_main
from worldsim.errors import ConfigError, WeightsError
from worldsim.eval.evaluate import EvalConfig, evaluate
from worldsim.eval.paired import fresh_episodes, rollout
from worldsim.eval.predictor import CopyLast

K, H, N = 3, 6, 4


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path_factory.mktemp("eval") / "run"
    exe = Path(sys.executable).with_name("worldsim")
    proc = subprocess.run([str(exe), "evaluate", "--scene", "bounce", "--model", "copy-last", "--episodes", str(N),
                           "--context", str(K), "--horizon", str(H), "--resolution", "32", "--videos", "2",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_evaluate_writes_json_with_every_figure_and_its_interval(evaluated):
    out, proc = evaluated
    assert "Physics-IQ" in proc.stdout and "metrics.json" in proc.stdout
    fig = json.loads((out / "metrics.json").read_text())
    assert fig["config"]["episodes"] == N and fig["config"]["horizon"] == H and fig["config"]["context"] == K
    assert fig["predictor"]["name"] == "copy-last" and len(fig["predictor"]["sha256"]) == 64
    assert re.fullmatch(r"[0-9a-f]{40}", fig["git"]["commit"])
    assert set(fig["scores"]) == {"copy-last", "linear", "perturbed"}
    for name, s in fig["scores"].items():
        for metric in ("psnr", "ssim", "psnr_moving", "position_px_vs_mujoco", "velocity_px_vs_state", "mse"):
            est = s["per_step"][metric]
            assert len(est["value"]) == H and len(est["ci95"][0]) == H and est["n"] == N, (name, metric)
        psnr = s["summary"]["psnr"]
        assert psnr["ci95"][0] <= psnr["value"] <= psnr["ci95"][1]
        assert 0 <= s["physics_iq"]["score"]["value"] <= 100
    # copy-last invents no motion: Physics-IQ 0; a perturbed MuJoCo take is near the physical variance
    assert fig["scores"]["copy-last"]["physics_iq"]["score"]["value"] == 0
    assert fig["scores"]["perturbed"]["physics_iq"]["score"]["value"] > 90
    assert fig["scores"]["perturbed"]["summary"]["psnr@1"]["value"] > fig["scores"]["copy-last"]["summary"]["psnr@1"]["value"]
    assert set(fig["physical_variance"]) >= {"spatial_iou", "spatiotemporal_iou", "weighted_spatial_iou", "mse"}
    assert fig["floor"]["summary"]["position_px_floor"]["value"] < 1.0
    assert fig["thresholds"]["perturb_pos_m"] == 1e-3


def test_every_video_in_the_html_decodes_with_the_right_frames(evaluated):
    out, _ = evaluated
    text = (out / "report.html").read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text  # self-contained
    videos = re.findall(r"data-frames='(\d+)' src='data:image/gif;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(videos) == 2 + 2  # two episodes of the model, episode 0 of each other baseline
    for declared, b64 in videos:
        frames = iio.imread(io.BytesIO(base64.b64decode(b64)), index=None, extension=".gif")
        assert frames.shape[0] == int(declared) == K + H
        rgb = frames[..., :3].astype(np.int16)
        width = rgb.shape[2] // 3
        mujoco_panel = rgb[:, : rgb.shape[1] * 3 // 4, :width]
        for f in mujoco_panel:
            assert f.std() > 10, "a blank MuJoCo frame"
            assert len(np.unique(f.reshape(-1, 3), axis=0)) >= 3  # walls, backdrop and at least one ball
        assert np.abs(np.diff(rgb, axis=0)).sum() > 0  # frames change
    plots = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", text)
    assert len(plots) == 1 and iio.imread(base64.b64decode(plots[0])).shape[0] > 300


def _cli_error(capsys, *args) -> str:
    assert cli_main(["evaluate", *args]) == 2
    return capsys.readouterr().err


def test_horizon_longer_than_the_episodes_is_a_clear_error(capsys, tmp_path):
    err = _cli_error(capsys, "--horizon", "300", "--out", str(tmp_path / "o"))
    assert "--horizon" in err and "longer than the episodes" in err and "250" in err
    ep = fresh_episodes("bounce", 1, 5, resolution=16)
    with pytest.raises(ConfigError, match="longer than the episodes") as e:
        rollout(CopyLast(), ep, 3, 4)
    assert e.value.field == "horizon"


def test_empty_test_split_is_a_clear_error(capsys, tmp_path):
    err = _cli_error(capsys, "--episodes", "0", "--out", str(tmp_path / "o"))
    assert "--episodes" in err and "empty" in err
    with pytest.raises(ConfigError, match="empty") as e:
        fresh_episodes("bounce", 0, 10)
    assert e.value.field == "episodes"


def test_weights_of_another_scene_are_refused(capsys, tmp_path):
    import torch

    from worldsim.weights import save_weights

    weights = save_weights(tmp_path / "push.safetensors", {"w": torch.zeros(2)}, {"scene": {"name": "push"}})
    err = _cli_error(capsys, "--model", str(weights), "--out", str(tmp_path / "o"))
    assert "scene.name" in err and "'push'" in err and "'bounce'" in err and str(weights) in err

    class PushOnly(CopyLast):
        scenes = ("push",)

    with pytest.raises(WeightsError, match="made for scenes") as e:
        evaluate(EvalConfig(episodes=2, horizon=2), PushOnly())
    assert e.value.field == "scene"


def test_other_bad_inputs_name_their_field(capsys, tmp_path):
    assert "--model" in _cli_error(capsys, "--model", "no-such-model", "--out", str(tmp_path / "a"))
    assert "--context" in _cli_error(capsys, "--context", "1", "--out", str(tmp_path / "b"))
    assert "distribution" in _cli_error(capsys, "--distribution", "sideways", "--episodes", "1", "--out", str(tmp_path / "c"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    assert "--out" in _cli_error(capsys, "--out", str(tmp_path / "full"))
    corrupt = tmp_path / "bad.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    assert "safetensors" in _cli_error(capsys, "--model", str(corrupt), "--out", str(tmp_path / "d"))


def test_a_predictor_returning_the_wrong_shape_is_caught():
    class Broken(CopyLast):
        name = "broken"

        def predict(self, context, actions, horizon, **kw):
            return super().predict(context, actions, horizon, **kw)[:, :-1]

    ep = fresh_episodes("bounce", 2, 6, resolution=16)
    with pytest.raises(ConfigError, match="returned") as e:
        rollout(Broken(), ep, 3, 3)
    assert e.value.field == "prediction"


def test_results_table_has_a_row_per_predictor(evaluated):
    from worldsim.eval.tables import markdown

    out, _ = evaluated
    table = markdown([out / "metrics.json"])
    lines = table.splitlines()
    assert len(lines) == 2 + 3 and all(line.count("|") == lines[0].count("|") for line in lines)
    assert "| bounce | id | copy-last |" in table and "[" in lines[2]


def test_several_distributions_give_a_generalisation_table(tmp_path, capsys):
    out = tmp_path / "gen"
    assert cli_main(["evaluate", "--episodes", "2", "--context", "2", "--horizon", "3", "--videos", "1",
                     "--distribution", "id,ood", "--out", str(out)]) == 0
    for dist in ("id", "ood"):
        fig = json.loads((out / dist / "metrics.json").read_text())
        assert fig["config"]["distribution"] == dist and (out / dist / "report.html").is_file()
    table = (out / "generalisation.md").read_text()
    assert "ood ÷ id" in table and "| copy-last |" in table and "parser floor" in table


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "bounce.zarr"
    assert cli_main(["record", str(path), "--scene", "bounce", "--episodes", "3", "--frames", "12",
                     "--resolution", "32", "--split", "test", "--quiet"]) == 0
    return path


def test_evaluate_reads_a_stores_test_split(store):
    from worldsim.eval.paired import store_episodes
    from worldsim.eval.predictor import PerturbedMuJoCo

    ev = evaluate(EvalConfig(store=str(store), episodes=3, context=3, horizon=6, videos=1, bootstrap=200))
    assert ev.figures["episodes"]["n"] == 3 and "store" in ev.figures["episodes"]["source"]
    assert ev.figures["episodes"]["distribution"] == "store:test"
    # the state rebuilt from the recorded qpos/qvel lets the exact simulator reproduce the recorded frames
    ep = store_episodes(store, 9, n=3)
    paired = rollout(PerturbedMuJoCo("bounce", sigma_pos=0.0, sigma_vel=0.0), ep, 3, 6)
    assert np.array_equal(paired.prediction, paired.truth)


def test_the_cli_scores_a_store_at_its_own_resolution_unless_told(tmp_path, capsys):
    """A 16-px store needs no --resolution (the default would be 32 and refused); an explicit one still wins."""
    small = tmp_path / "bounce16.zarr"
    assert cli_main(["record", str(small), "--scene", "bounce", "--episodes", "2", "--frames", "6",
                     "--resolution", "16", "--split", "test", "--quiet"]) == 0
    args = ["evaluate", "--store", str(small), "--episodes", "2", "--context", "2", "--horizon", "3", "--videos", "0"]
    assert cli_main([*args, "--out", str(tmp_path / "a")]) == 0
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["config"]["resolution"] == 16
    capsys.readouterr()
    assert cli_main([*args, "--resolution", "32", "--out", str(tmp_path / "b")]) == 2
    assert "resolution" in capsys.readouterr().err  # the store's frames are 16x16, not 32x32


def test_store_mismatches_are_clear_errors(store, capsys, tmp_path):
    import torch

    from worldsim.weights import save_weights

    err = _cli_error(capsys, "--store", str(store), "--scene", "push", "--out", str(tmp_path / "a"))
    assert "scene" in err and "holds 'bounce'" in err
    weights = save_weights(tmp_path / "push.safetensors", {"w": torch.zeros(2)}, {"scene": {"name": "push"}})
    err = _cli_error(capsys, "--store", str(store), "--model", str(weights), "--out", str(tmp_path / "b"))
    assert "scene.name" in err and "'push'" in err and "'bounce'" in err
    err = _cli_error(capsys, "--store", str(store), "--horizon", "20", "--out", str(tmp_path / "c"))
    assert "horizon" in err and "longer than the episodes" in err and "12 frames" in err
    err = _cli_error(capsys, "--store", str(store), "--split", "val", "--out", str(tmp_path / "d"))
    assert "split" in err and "'val'" in err


def test_evaluate_scores_an_untrained_debug_world_model(tmp_path, capsys):
    """The world model plugs in through the Predictor protocol: exported weights of the `debug` preset."""
    import torch

    from worldsim.models.load import save_model
    from worldsim.models.presets import build_model

    torch.manual_seed(0)
    scene = {"name": "bounce", "resolution": [32, 32], "frame_skip": 200, "fps": 25.0, "cameras": ["front", "tilted"],
             "action_low": [], "action_high": [], "param_names": [], "windows": [8]}
    weights = save_model(tmp_path / "debug.safetensors", build_model("debug", text=None), scene, {})
    out = tmp_path / "run"
    assert cli_main(["evaluate", "--model", str(weights), "--episodes", "2", "--context", "3", "--horizon", "3",
                     "--videos", "1", "--out", str(out)]) == 0
    fig = json.loads((out / "metrics.json").read_text())
    assert fig["predictor"]["kind"] == "world-model" and len(fig["predictor"]["sha256"]) == 64
    assert set(fig["scores"]) == {fig["predictor"]["name"], "copy-last", "linear", "perturbed"}
    text = (out / "report.html").read_text()
    assert fig["predictor"]["rollout"]["steps"] == 3  # its file names no steps
    assert "rollouts, 3 euler steps per frame" in text
    gifs = re.findall(r"data-frames='(\d+)' src='data:image/gif;base64,([A-Za-z0-9+/=]+)'", text)
    assert len(gifs) == 1 + 3
    for declared, b64 in gifs:
        assert iio.imread(io.BytesIO(base64.b64decode(b64)), index=None, extension=".gif").shape[0] == int(declared) == 6
    # a model trained for another resolution is refused before anything runs
    err = _cli_error(capsys, "--model", str(weights), "--resolution", "16", "--out", str(tmp_path / "r16"))
    assert "resolution" in err


def test_evaluation_never_imports_training_code_or_lightning():
    import subprocess
    import sys

    code = ("import sys, worldsim.eval.evaluate, worldsim.eval.report, worldsim.eval.voe, worldsim.eval.world_model, "
            "worldsim.eval.physics, worldsim.eval.permanence, worldsim.eval.tables\n"
            "from worldsim.eval.evaluate import EvalConfig, evaluate\n"
            "evaluate(EvalConfig(episodes=1, context=2, horizon=2, bootstrap=10, baselines=()))\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning') "
            "or m.startswith('worldsim.training'))\n"
            "print(bad)\nassert not bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_tables_module_without_metrics_files_prints_usage(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "nope.json"
    for args in ([], [str(missing)]):
        r = subprocess.run([sys.executable, "-m", "worldsim.eval.tables", *args], capture_output=True, text=True)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("usage: python -m worldsim.eval.tables")
    assert str(missing) in r.stderr

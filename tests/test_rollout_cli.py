"""`worldsim rollout`, `worldsim plan` and `worldsim generate` write videos and raw frames; errors are one clear
line and exit code 2 (issue 7)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from rollout_helpers import debug_weights

from worldsim.cli import main


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    return debug_weights(tmp_path_factory.mktemp("w") / "bounce.safetensors", "bounce")


def test_rollout_command_writes_video_and_frames(weights, tmp_path, capsys):
    assert main(["rollout", str(weights), "--out", str(tmp_path), "--frames", "4", "--batch", "2",
                 "--resolution", "16", "--no-progress"]) == 0
    z = np.load(tmp_path / "rollout.npz")
    assert z["generated"].shape == (2, 4, 16, 16, 3) and z["mujoco"].shape == (2, 4, 16, 16, 3)
    assert (tmp_path / "rollout.mp4").stat().st_size > 0 and "MuJoCo on the right" in capsys.readouterr().out


def test_rollout_command_writes_a_generated_store(weights, tmp_path, capsys):
    from worldsim.data.store import open_store

    out = tmp_path / "imagined.zarr"
    assert main(["rollout", str(weights), "--out", str(tmp_path), "--to-store", str(out), "--episodes", "3",
                 "--frames", "2", "--batch", "2", "--resolution", "16", "--no-progress"]) == 0
    s = open_store(out)
    assert s.attrs["generated"] is True and len(s.committed("train")) == 3
    assert s.episode("train", 2)["frames"].shape == (5, 16, 16, 3)  # 3 real context + 2 generated


def test_generate_command_with_prompt_and_simulation(weights, tmp_path, capsys):
    assert main(["generate", str(weights), "t2v", "--frames", "12", "--steps", "2", "--prompt",
                 "a red ball bounces off the floor", "--simulate", "--format", "gif", "--out", str(tmp_path),
                 "--no-progress", "--guidance-text", "2"]) == 0
    z = np.load(tmp_path / "t2v.npz")
    assert z["frames"].shape == (1, 12, 16, 32, 3) and z["mujoco"].shape == (12, 16, 16, 3)
    assert (tmp_path / "t2v.gif").exists() and "bounces off the floor" in (tmp_path / "t2v.txt").read_text()
    np.savez(tmp_path / "clip.npz", frames=z["mujoco"][:2])
    assert main(["generate", str(weights), "extend_backward", "--clip", str(tmp_path / "clip.npz"), "--frames", "4",
                 "--steps", "2", "--out", str(tmp_path), "--no-progress"]) == 0
    assert np.array_equal(np.load(tmp_path / "extend_backward.npz")["frames"][0, 2:], z["mujoco"][:2])
    prompt = ["--prompt", "a red ball", "--steps", "2", "--no-progress", "--format", "gif"]
    assert main(["generate", str(weights), "t2v", "--frames", "5", *prompt, "--out", str(tmp_path / "w")]) == 0
    assert main(["generate", str(weights), "t2v", "--frames", "5", "--rollout-after", "3", *prompt,
                 "--out", str(tmp_path / "r")]) == 0
    whole, rolled = (np.load(tmp_path / d / "t2v.npz")["frames"] for d in ("w", "r"))
    assert rolled.shape == whole.shape == (1, 5, 16, 16, 3) and not np.array_equal(rolled[:, 3:], whole[:, 3:])


def test_plan_command_reports_success_rate(tmp_path, capsys):
    assert main(["plan", "--out", str(tmp_path), "--episodes", "1", "--resolution", "16", "--population", "16",
                 "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["model"] == "mujoco" and len(summary["episodes"]) == 1 and "solved" in capsys.readouterr().out
    assert summary["episodes_planned"] == summary["episodes_asked"] == 1
    assert not (tmp_path / "summary.json.tmp").exists()
    assert (tmp_path / "episode000.mp4").exists()
    assert summary["imagination"] is None  # MuJoCo's costs are exact: nothing imagined
    assert main(["plan", "--out", str(tmp_path / "p"), "--particles", "4", "--no-progress"]) == 2
    assert "--particles applies to a world model" in capsys.readouterr().err
    assert not (tmp_path / "p" / "summary.json").exists()


def test_cli_errors_are_one_line(weights, tmp_path, capsys):
    assert main(["generate", str(weights), "t2v", "--frames", "4", "--steps", "0", "--out", str(tmp_path)]) == 2
    assert "steps" in capsys.readouterr().err
    assert main(["rollout", str(weights), "--out", str(tmp_path), "--resolution", "64"]) == 2
    assert "scene.resolution" in capsys.readouterr().err
    assert main(["generate", str(weights), "t2v", "--frames", "4", "--prompt", "a purple ball",
                 "--out", str(tmp_path)]) == 2
    assert "understands" in capsys.readouterr().err

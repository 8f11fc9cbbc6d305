"""The `worldsim` command: the main job, benchmarks' JSON, and clear one-line errors without tracebacks."""

from __future__ import annotations

import json

import imageio.v3 as iio


def test_demo_writes_a_video(run_cli, tmp_path):
    out = tmp_path / "demo"
    res = run_cli("demo", "--frames", "12", "--resolution", "32", "--out", str(out))
    assert res.returncode == 0, res.stderr
    path = out / "bounce.mp4"
    assert str(path.resolve()) in res.stdout
    frames = iio.imread(path)
    assert frames.shape[0] == 12 and frames.shape[2] == 2 * frames.shape[1]  # two cameras side by side
    assert frames.std() > 5  # not a blank video


def test_demo_refuses_non_empty_out(run_cli, tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    res = run_cli("demo", "--frames", "2", "--out", str(tmp_path))
    assert res.returncode == 2
    assert "--out" in res.stderr and "not empty" in res.stderr and "Traceback" not in res.stderr
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_unknown_scene_is_one_line(run_cli, tmp_path):
    res = run_cli("demo", "--scene", "nope", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "unknown scene 'nope'" in res.stderr and "bounce" in res.stderr
    res = run_cli("--debug", "demo", "--scene", "nope", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_bench_scenes_json(run_cli):
    res = run_cli("bench", "scenes", "--quick", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["bench"] == "scenes" and report["machine"]["cores"] >= 1
    for row in report["rows"]:
        assert row["value"] > 0 and row["reference_value"] > 0 and row["unit"] == "frames/s"
    assert any(r["figure"].startswith("bounce ") for r in report["rows"])

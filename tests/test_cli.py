"""The `worldsim` command: the main job, benchmarks' JSON, and clear one-line errors without tracebacks."""

from __future__ import annotations

import json

from worldsim import pretrained
from worldsim.sim.registry import scene_names


def test_demo_end_to_end(run_cli, tmp_path):
    """The README's main job at small size: record, shipped model, paired rollouts, report, headline figures."""
    out = tmp_path / "demo"
    res = run_cli("demo", "--episodes", "2", "--horizon", "4", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert (out / "data.zarr").is_dir()
    report, metrics = out / "report.html", out / "metrics.json"
    assert f"report: {report.resolve()}" in res.stdout
    assert "<html" in report.read_text()[:2000].lower()
    figures = json.loads(metrics.read_text())
    assert figures["episodes"]["n"] == 2 and figures["config"]["horizon"] == 4
    assert figures["predictor"]["kind"] == "world-model" and set(figures["baselines"]) == {"copy-last", "linear"}
    lines = res.stdout.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:4] == ["figure", "model", "copy-last", "linear"])
    table = "\n".join(lines[head:head + 5])
    for label in ("next-frame PSNR (dB)", "centroid error (px)", "velocity error (px/frame)", "Physics-IQ score"):
        assert label in table
    psnr = figures["scores"]["copy-last"]["summary"]["psnr@1"]
    assert f"{psnr['value']:.1f} [{psnr['ci95'][0]:.1f}, {psnr['ci95'][1]:.1f}]" in table  # printed = written
    assert "record" in res.stderr and "rollout" in res.stderr  # progress bars


def test_demo_without_shipped_weights_suggests_train(run_cli, tmp_path):
    unshipped = [s for s in scene_names() if s not in pretrained.available()]
    res = run_cli("demo", "--scene", unshipped[0], "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "no shipped model" in res.stderr and "--train" in res.stderr
    assert not (tmp_path / "x").exists()


def test_demo_refuses_non_empty_out(run_cli, tmp_path):
    (tmp_path / "keep.txt").write_text("precious")
    res = run_cli("demo", "--episodes", "2", "--out", str(tmp_path))
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

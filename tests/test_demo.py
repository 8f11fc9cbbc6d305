"""`worldsim demo --train MINUTES`: record a small train/val set, train a fresh model under a wall-clock budget
(`trainer.max_time`), then evaluate it like the shipped one. Sizes shrunk so the whole run takes seconds."""

from __future__ import annotations

import sys

import yaml

from worldsim import demo


def test_demo_trains_a_fresh_model_under_a_time_budget(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(demo, "TRAIN_EPISODES", 4)
    monkeypatch.setattr(demo, "VAL_EPISODES", 2)
    monkeypatch.setattr(demo, "TRAIN_FRAMES", 10)
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # `worldsim fit` rewrites sys.argv for LightningCLI
    res = demo.run("parabola", episodes=2, horizon=4, train_minutes=0.1, out=tmp_path / "d", bootstrap=100)
    out = tmp_path / "d"
    assert res.weights == out / "run" / "model.safetensors" and res.weights.is_file()
    cfg = yaml.safe_load((out / "train.yaml").read_text())
    assert cfg["trainer"]["max_time"] == {"seconds": 6} and cfg["data"]["stores"] == [str(out / "train.zarr")]
    assert res.report.is_file() and res.figures["scene"]["name"] == "parabola"
    assert res.figures["predictor"]["kind"] == "world-model"
    assert any("Physics-IQ" in line for line in res.lines)

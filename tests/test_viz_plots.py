"""Plots and notebook helpers: each figure's plotted data is read back and compared with its input; the small-size
switch and the scaling helpers are checked against the real config files."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image

from worldsim.viz import notebook, plots, scaling


def test_loss_curve_plots_the_csv_columns(tmp_path):
    csv = tmp_path / "logs" / "version_0" / "metrics.csv"
    csv.parent.mkdir(parents=True)
    csv.write_text("epoch,step,train/loss,val/loss\n0,0,1.0,\n0,1,0.5,\n0,1,,0.7\n0,2,0.25,\n")
    fig = plots.loss_curve(tmp_path)
    train, val = fig.axes[0].lines
    assert train.get_xydata().tolist() == [[0, 1.0], [1, 0.5], [2, 0.25]] and val.get_xydata().tolist() == [[1, 0.7]]


def test_trajectories_and_tracks_follow_a_moving_square():
    frames = np.zeros((4, 10, 10, 3), np.uint8)
    for t in range(4):
        frames[t, 2:4, 2 * t:2 * t + 2] = (220, 40, 40)
    p = plots.tracks(frames, np.array([[220, 40, 40]]))
    assert np.allclose(p[:, 0], [[1 + 2 * t, 3] for t in range(4)])  # pixel centres at +0.5
    fig = plots.trajectories({"a": p}, size=(10, 10), colours=np.array([[220, 40, 40]]))
    ax = fig.axes[0]
    assert np.allclose(ax.lines[0].get_xydata(), p[:, 0]) and ax.get_ylim() == (10, 0)  # v points down
    assert np.allclose(ax.lines[0].get_color(), np.array([220, 40, 40]) / 255)


def test_curves_per_step_and_score_table():
    figures = {"scores": {"m": {"per_step": {"psnr": {"value": [30.0, 20.0]}},
                                "summary": {"psnr": {"value": 25.0, "ci95": [24.0, 26.0]}}}}}
    steps = plots.per_step(figures, "psnr")
    assert steps["m"].tolist() == [30.0, 20.0]
    fig = plots.curves(steps, ylabel="dB")
    assert fig.axes[0].lines[0].get_xydata().tolist() == [[1, 30.0], [2, 20.0]]
    html = plots.score_table(figures, keys=("psnr", "ssim"))
    assert "<td>m</td><td>25 [24, 26]</td><td>–</td>" in html


def test_estimates_flattens_nested_results():
    res = {"vanish": {"accuracy": {"value": 1.0, "ci95": [1, 1]}, "sets": 2}, "x": {"y": {"value": 2, "ci95": [1, 3]}}}
    assert set(plots.estimates(res)) == {"vanish.accuracy", "x.y"}


def test_strip_clip_rows_noise_plan_bars_and_png():
    clip = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), np.uint8)
    s = plots.strip(clip)
    assert s.shape == (4, 17, 3) and np.array_equal(s[:, 6:11], clip[1]) and (s[:, 5] == 255).all()
    fig = plots.clip_rows({"a": clip, "b": clip[:2]})
    assert np.array_equal(fig.axes[0].images[0].get_array(), s) and len(fig.axes) == 2
    plan = np.array([[80.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    im = plots.noise_plan(plan).axes[0].images[0].get_array()
    assert im.shape == (3, 2) and im[0, 0] == pytest.approx(np.log10(80)) and im[0, 1] == pytest.approx(-3)
    b = plots.bars({"x": 0.8, "y": 0.4}, {"x": (0.7, 0.9), "y": (0.3, 0.5)}, reference=0.5)
    assert [r.get_height() for r in b.axes[0].patches] == [0.8, 0.4]
    img = Image.open(io.BytesIO(plots.png(b)))
    assert img.format == "PNG" and img.size[0] > 100


def test_small_switch(monkeypatch):
    monkeypatch.delenv(notebook.SMALL_ENV, raising=False)
    assert not notebook.small() and notebook.pick(10, 2) == 10
    for on in ("1", "yes", "true"):
        monkeypatch.setenv(notebook.SMALL_ENV, on)
        assert notebook.small() and notebook.pick(10, 2) == 2
    monkeypatch.setenv(notebook.SMALL_ENV, "0")
    assert not notebook.small()
    monkeypatch.setenv(notebook.SMALL_ENV, "1")
    run = notebook.TinyRun.default("push")
    assert run.preset == "debug" and run.steps < 20 and "push" in run.name


def test_samples_reads_the_run_gifs(tmp_path):
    import imageio.v3 as iio

    clip = np.zeros((3, 4, 6, 3), np.uint8)
    clip[1, :, :3] = 200
    (tmp_path / "samples").mkdir()
    iio.imwrite(tmp_path / "samples" / "step_000010.gif", clip, duration=40, loop=0)
    got = notebook.samples(tmp_path)
    assert list(got) == [10] and np.array_equal(got[10], clip)


def test_train_tiny_refuses_a_run_of_another_scene(tmp_path):
    with pytest.raises(ValueError, match="push"):
        notebook.train_tiny("bounce", notebook.TinyRun.default("push"), folder=tmp_path)


def test_fit_args_parse_with_the_real_cli(tmp_path, monkeypatch):
    """The tiny run's arguments are accepted by `worldsim fit` (resolved, not trained)."""
    monkeypatch.setenv(notebook.SMALL_ENV, "1")
    args = notebook.fit_args(notebook.TinyRun.default("bounce"), [tmp_path / "a.zarr", tmp_path / "b.zarr"],
                             tmp_path / "run")
    text = scaling.resolved(args)
    assert "preset: debug" in text and "max_steps: 8" in text and "b.zarr" in text


def test_scaling_helpers_read_the_real_configs(tmp_path):
    d = scaling.config_dir(ROOT / "notebooks")
    assert d == ROOT / "configs" / "train"
    cfg = scaling.load(d / "gpu128.yaml")
    assert scaling.global_batch(cfg, gpus_per_node=8) == cfg["data"]["batch_size"] * 8
    header, rows = scaling.compare({"gpu128": cfg, "debug": scaling.load(d / "debug.yaml")})
    assert header == ["setting", "gpu128", "debug"] and ["trainer.strategy", "ddp", "–"] in rows
    cmds = scaling.launch_commands("c.yaml", nodes=3, gpus_per_node=4)
    assert "--nnodes 3 --nproc-per-node 4" in cmds["torchrun, per node"] and "--nodes=3" in cmds["SLURM (sbatch)"]
    with pytest.raises(FileNotFoundError):
        scaling.config_dir(tmp_path)
    with pytest.raises(RuntimeError, match="unknown key|invalid value"):
        scaling.resolved(["--config", str(d / "debug.yaml"), "--model.no_such_key", "1"])

"""Generation-mode probes (issue 9, "generation modes"): MuJoCo's own frames pass, the naive references fail, and a
world model's row comes from `generate` in each mode."""

from __future__ import annotations

import json

import numpy as np
import pytest

from worldsim.cli import main as cli_main
from worldsim.errors import ConfigError
from worldsim.eval import modes as M
from worldsim.eval.tables import modes_markdown


def _v(scores, row, key):
    return scores[row][key]["value"]


@pytest.fixture(scope="module")
def references():
    return M.run("occlusion", n=4, given=4, made=12, start=14, n_resamples=100)


def test_frame_steps_are_rms_differences_in_levels():
    f = np.zeros((1, 3, 4, 4, 3), np.uint8)
    f[:, 1] = 10
    f[:, 2, :2] = 30  # half the frame changes by 20, half by 10
    assert np.allclose(M.frame_steps(f), [[10.0, np.sqrt((20**2 + 10**2) / 2)]])


def test_mujoco_passes_every_mode_and_the_naive_references_fail(references):
    r = references
    ext, con, loop, prev = (r[m]["scores"] for m in M.MODES)
    assert _v(ext, "mujoco (exact)", "pass_rate") == 1.0 and _v(ext, "mujoco (exact)", "error_px") == 0.0
    assert _v(ext, "copy-first (the first given frame)", "pass_rate") < 0.5  # a frozen ball is where it ends
    assert _v(con, "mujoco (exact)", "pass_rate") == 1.0
    # the nearest given frame makes seamless joins and one jump in the middle, larger than MuJoCo's steps
    assert _v(con, "nearest given frame", "seam_step") == 0.0
    assert _v(con, "nearest given frame", "max_step") > _v(con, "mujoco (exact)", "max_step")
    # a real window played as a loop jumps at the seam: the reference that a seamless loop must beat
    assert _v(loop, "mujoco window played as a loop", "seam_pass") < 0.5
    assert _v(loop, "mujoco window played as a loop", "seam_step") > r["loop"]["mujoco_step_p95"] * 0.9
    # the same states rendered at 16 and 32 px: the floor of the preview check, within its 1-draft-px tolerance
    floor = prev["mujoco (16x16 vs 32x32 render)"]
    assert floor["pass_rate"]["value"] > 0.9 and floor["error_px"]["value"] < 0.5
    assert r["preview"]["draft"] == [16, 16] and r["connect"]["head"] == 2


def test_a_world_model_gets_a_row_in_each_mode_from_generate():
    from worldsim import load

    model = load("occlusion")
    examples = {}
    r = M.run("occlusion", model, name="occlusion", n=2, given=4, made=8, start=14, steps=2, n_resamples=50,
              examples=examples)
    for mode in M.MODES:
        row = r[mode]["scores"]["occlusion"]
        assert all(v["value"] is None or np.isfinite(v["value"]) for v in row.values()), mode
        assert r[mode]["episodes"] == 2
    assert 0.0 <= _v(r["loop"]["scores"], "occlusion", "objects_shown") <= 1.0
    assert _v(r["connect"]["scores"], "occlusion", "max_step") >= _v(r["connect"]["scores"], "occlusion", "seam_step")
    # the report's example videos: given frames marked where the mode gives them
    assert examples["extend_backward"]["given"].tolist() == [False] * 8 + [True] * 4
    assert examples["connect"]["given"].tolist() == [True] * 2 + [False] * 8 + [True] * 2
    assert [p.shape[1] for p in examples["preview"]["panels"]] == [16, 32]
    assert len(examples["loop"]["panels"][0]) == 2 * (8 - 1)
    from worldsim.eval.report import panels_video

    strip = panels_video(examples["preview"]["panels"], examples["preview"]["given"])
    assert strip.shape[0] == 8 and strip.shape[2] > 2 * 128  # both panels scaled to the same size, side by side


def test_the_modes_table_has_a_row_per_mode_and_video(references, tmp_path):
    p = tmp_path / "metrics.json"
    p.write_text(json.dumps({"config": {"scene": "occlusion", "start": 14}, "modes": references}))
    table = modes_markdown([p])
    assert "| occlusion (start 14) | extend backward | mujoco (exact) | 1.000 [1.000, 1.000] | 0.000" in table
    assert table.count("\n") == 1 + sum(len(d["scores"]) for d in references.values())


def test_the_mode_probes_run_from_the_cli_and_refuse_an_odd_context(tmp_path, capsys):
    out = tmp_path / "ev"
    assert cli_main(["evaluate", "--scene", "occlusion", "--model", "copy-last", "--episodes", "2", "--start", "14",
                     "--horizon", "8", "--probes", "modes", "--out", str(out)]) == 0
    fig = json.loads((out / "metrics.json").read_text())
    assert set(fig["modes"]) == set(M.MODES) and fig["thresholds"]["modes"]["seam_percentile"] == 95.0
    assert "Generation mode: loop" in (out / "report.html").read_text()
    capsys.readouterr()
    assert cli_main(["evaluate", "--scene", "occlusion", "--model", "copy-last", "--episodes", "2", "--context", "3",
                     "--probes", "modes", "--out", str(tmp_path / "odd")]) != 0
    err = capsys.readouterr().err
    assert "--context" in err and "even" in err and not (tmp_path / "odd").exists()  # refused before any rollout


def test_run_refuses_an_odd_number_of_given_frames():
    with pytest.raises(ConfigError, match="even number of given frames"):
        M.run("occlusion", n=1, given=3, made=4)


def test_actuated_scenes_give_extend_and_connect_the_true_actions(tmp_path, monkeypatch):
    import importlib

    from rollout_helpers import debug_weights

    from worldsim.rollout.model import WorldModel

    G = importlib.import_module("worldsim.rollout.generate")  # the module (the package exports the function)

    model = WorldModel.load(debug_weights(tmp_path / "push.safetensors"))
    seen = {}
    real = G.generate

    def spy(model, mode, **kw):
        seen[mode] = kw.get("actions")
        return real(model, mode, **kw)

    monkeypatch.setattr(G, "generate", spy)
    M.run("push", model, n=2, given=2, made=3, steps=1, n_resamples=20)
    from worldsim.eval.paired import fresh_episodes

    ep = fresh_episodes("push", 2, 5)
    for mode in ("extend_backward", "connect"):  # frame t carries the action that moved t - 1 to t
        assert seen[mode].shape == (2, 5, ep.actions.shape[-1]) and not seen[mode][:, 0].any()
        assert np.array_equal(seen[mode][:, 1:], ep.actions)
    assert seen["loop"] is None and seen["t2v"] is None  # text-only modes (preview's draft is a t2v)


def test_weights_conditioned_on_scene_parameters_get_each_episodes_own(tmp_path, monkeypatch):
    """`collide`'s shipped weights are conditioned on the balls' masses: every mode hands `generate` the episodes'
    parameters (a model without them would refuse to sample)."""
    import importlib

    from rollout_helpers import debug_weights

    from worldsim.eval.paired import fresh_episodes
    from worldsim.rollout.model import WorldModel

    G = importlib.import_module("worldsim.rollout.generate")
    model = WorldModel.load(debug_weights(tmp_path / "collide.safetensors", scene="collide"))
    assert model.net.cfg.param_dim == 2
    seen = {}
    real = G.generate

    def spy(model, mode, **kw):
        seen.setdefault(mode, []).extend(kw.get("params") or [])
        return real(model, mode, **kw)

    monkeypatch.setattr(G, "generate", spy)
    out = M.run("collide", model, n=2, given=2, made=3, steps=1, n_resamples=20, batch_size=1)
    assert set(out) == set(M.MODES)
    ep = fresh_episodes("collide", 2, 5)
    for mode in ("extend_backward", "connect", "loop", "t2v"):  # preview's draft is a t2v, its render an edit
        assert seen[mode] == list(ep.params), mode


def test_window_captions_describe_the_window_from_its_first_frame():
    """Weights trained on captions of their clips (`data.window_captions`) are prompted with the window's own caption:
    from the episode's first frame it is the episode's caption; from a later one it names the objects where they
    are there and the window's length, where the episode's caption keeps frame 0's positions."""
    from worldsim.eval.paired import fresh_episodes, windows

    ep = fresh_episodes("collide", 2, 8)
    assert list(M.episode_captions(ep, 0, window=True)) == list(M.episode_captions(ep, 0))
    later = windows(ep, [3, 3], 5)
    own, episode = M.episode_captions(later, 3, window=True), M.episode_captions(later, 3)
    for i in range(2):
        x, y = ep.object_pos[i, 3, 0, :2]
        assert own[i].startswith("Scene collide, frames 0 to 4,") and f"is at x {x:.2f} m, y {y:.2f} m" in own[i]
        assert episode[i].startswith("Scene collide, frames 0 to 7") and episode[i] != own[i]

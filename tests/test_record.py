"""`worldsim record`: deterministic, parallel, distributable, crash-safe, resumable; bad input refused (issue 4)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import worldsim  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
from worldsim.cli import main as cli
from worldsim.data import policies
from worldsim.data.claims import Claims
from worldsim.data.recorder import RecordConfig, load_config, record
from worldsim.data.splits import episode_seeds
from worldsim.data.store import open_store
from worldsim.errors import ConfigError, SceneError, StoreError

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(scene="bounce", episodes=4, frames=10, resolution=32, progress=False)


def tiny(path: Path, **kw):
    return record(RecordConfig(store=str(path), **{**TINY, **kw}))


def run_cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "worldsim.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, **kw)


def assert_same_store(a: Path | str, b: Path | str) -> None:
    """Every array and attribute equal (read with plain zarr), except the creation timestamp; no claim left."""
    ga, gb = zarr.open_group(str(a), mode="r"), zarr.open_group(str(b), mode="r")
    attrs_a, attrs_b = dict(ga.attrs), dict(gb.attrs)
    assert attrs_a.pop("created") and attrs_b.pop("created")
    assert attrs_a == attrs_b
    splits = sorted(set(ga.group_keys()) - {"claims"})
    assert splits == sorted(set(gb.group_keys()) - {"claims"})
    for g in (ga, gb):
        assert "claims" not in g.group_keys() or not list(g["claims"].group_keys())  # no claim left behind
    for split in splits:
        assert dict(ga[split].attrs) == dict(gb[split].attrs)
        names = sorted(ga[split].array_keys())
        assert names == sorted(gb[split].array_keys())
        for n in names:
            x, y = ga[split][n][:], gb[split][n][:]
            assert x.shape == y.shape and x.dtype == y.dtype, n
            assert (x == y).all(), f"{split}/{n} differs"


def test_one_and_two_workers_and_two_processes_on_disjoint_ranges_write_identical_stores(tmp_path):
    one = tmp_path / "one.zarr"
    tiny(one)
    two = tmp_path / "two.zarr"
    assert tiny(two, workers=2).recorded == 4
    assert_same_store(one, two)

    # two separate processes, started together, writing disjoint episode ranges into one store
    split = tmp_path / "split.zarr"
    common = [str(split), "--episodes", "2", "--frames", "10", "--resolution", "32", "--quiet"]
    procs = [subprocess.Popen([sys.executable, "-m", "worldsim.cli", "record", *common, "--start", s], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in ("2", "0")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert_same_store(one, split)
    assert open_store(split).committed("train").tolist() == [0, 1, 2, 3]


def test_episode_depends_only_on_seed_split_and_index(tmp_path):
    a = tiny(tmp_path / "a.zarr", episodes=3)
    b = tiny(tmp_path / "b.zarr", episodes=1, start=2)  # episode 2 alone, in another store
    assert a.recorded == 3 and b.recorded == 1
    sa, sb = open_store(tmp_path / "a.zarr"), open_store(tmp_path / "b.zarr")
    ea, eb = sa.episode("train", 2), sb.episode("train", 2)
    for n in ("frames", "qpos", "qvel", "object_pos", "env_seed", "params"):
        assert np.array_equal(ea[n], eb[n]) if n != "params" else ea[n] == eb[n]
    assert sb.committed("train").tolist() == [2]
    # splits draw from disjoint seed streams: no test or val episode shares a seed with a training episode
    seeds = {s: {episode_seeds(0, s, i).env for i in range(2000)} for s in ("train", "val", "test")}
    assert not (seeds["train"] & seeds["test"]) and not (seeds["train"] & seeds["val"])
    tiny(tmp_path / "a.zarr", episodes=3, split="test")
    st = open_store(tmp_path / "a.zarr")
    train, test = st.episode("train", 0), st.episode("test", 0)
    assert train["env_seed"] != test["env_seed"] and train["params"] != test["params"]


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path):
    """Kill a real `worldsim record` with SIGKILL once plain zarr shows committed episodes and the next one is in
    flight (its first frames chunk written, no commit mark); readers see only complete episodes; running the same
    command again completes the rest, and the store equals an uninterrupted one. While it runs, a second writer on
    the same episodes is refused."""
    args = dict(episodes=5, frames=90, resolution=64)  # 64 px x 90 frames: two frames chunks per episode
    reference = tmp_path / "reference.zarr"
    record(RecordConfig(store=str(reference), scene="bounce", progress=False, **args))

    path = tmp_path / "killed.zarr"
    cmd = [sys.executable, "-m", "worldsim.cli", "record", str(path), "--quiet"] + [
        x for k, v in args.items() for x in (f"--{k}", str(v))]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 90
    while not list((path / "claims").glob("train.*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    # a second writer pointed at the same episodes while the first is writing them is refused, not interleaved
    with pytest.raises(StoreError, match=f"being written by pid {proc.pid}"):
        record(RecordConfig(store=str(path), scene="bounce", progress=False, **args))
    in_flight = None
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            committed = np.flatnonzero(zarr.open_group(str(path), mode="r")["train"]["committed"][:] == 1)
        except (FileNotFoundError, KeyError, ValueError):
            committed = []
        if len(committed) and len(committed) < 5:
            nxt = int(committed.max()) + 1
            if (path / "train" / "frames" / "c" / str(2 * nxt)).exists():  # first half of the next episode written
                proc.send_signal(signal.SIGKILL)
                in_flight = nxt
                break
        time.sleep(0.002)
    proc.wait(timeout=30)
    assert in_flight is not None and proc.returncode == -signal.SIGKILL, proc.stderr.read()

    seen = open_store(path)
    done = seen.committed("train").tolist()
    assert 1 <= len(done) < 5 and in_flight not in done  # the half-written episode is invisible
    ref = open_store(reference)
    for i in done:  # every visible episode is complete
        for n in ("frames", "qpos", "object_centroid"):
            assert np.array_equal(seen.episode("train", i)[n], ref.episode("train", i)[n])
    assert list((path / "claims").glob("train.*"))  # the killed writer's claims are left behind (stale)

    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    assert f"recorded {5 - len(done)} episodes" in rerun.stdout and f"{len(done)} already committed" in rerun.stdout
    assert_same_store(reference, path)
    idx = open_store(path).split("train")["episode_index"][:]
    assert sorted(idx.tolist()) == list(range(5))  # nothing lost, nothing duplicated


def test_an_fsspec_url_store_equals_a_local_one(tmp_path):
    """Through zarr's fsspec support (here `file://`; s3:// and gs:// are the same code path): no claims there, so
    writers take disjoint ranges — appended here by a second run with two workers."""
    url = f"file://{tmp_path}/remote.zarr"
    assert tiny(url, episodes=2).recorded == 2
    assert tiny(url, episodes=2, start=2, workers=2).recorded == 2
    tiny(tmp_path / "local.zarr")
    assert_same_store(url, tmp_path / "local.zarr")
    assert open_store(url).committed("train").tolist() == [0, 1, 2, 3]
    assert not (tmp_path / "remote.zarr" / "claims").exists()


def test_appending_and_resuming_skip_committed_episodes(tmp_path):
    path = tmp_path / "a.zarr"
    assert tiny(path, episodes=2).recorded == 2
    again = tiny(path, episodes=2)
    assert (again.recorded, again.skipped) == (0, 2)
    more = tiny(path, episodes=4)
    assert (more.recorded, more.skipped) == (2, 2)
    tiny(tmp_path / "direct.zarr", episodes=4)
    assert_same_store(tmp_path / "direct.zarr", path)


def test_recording_a_gymnasium_env_end_to_end(tmp_path):
    """Reacher-v5: qpos/qvel from env.unwrapped.data, rewards present, objects absent; replaying the stored
    actions from the stored seed reproduces the stored states."""
    import gymnasium

    path = tmp_path / "reacher.zarr"
    assert cli(["record", str(path), "--scene", "Reacher-v5", "--episodes", "2", "--frames", "8", "--resolution",
                "32x48", "--quiet"]) == 0
    s = open_store(path)
    assert s.attrs["source"] == "gymnasium" and s.attrs["objects"] == [] and s.attrs["resolution"] == [32, 48]
    names = set(s.split("train").array_keys())
    assert {"rewards", "terminations", "qpos", "actions", "intrinsics"} <= names
    assert not any(n.startswith("object_") for n in names)
    ep = s.episode("train", 1)
    assert ep["frames"].shape == (8, 32, 48, 3) and ep["qpos"].shape == (8, 4) and ep["actions"].shape == (8, 2)
    assert np.all(np.abs(ep["actions"]) <= 1) and np.ptp(ep["actions"][:-1]) > 0 and not ep["actions"][-1].any()

    env = gymnasium.make("Reacher-v5")
    env.reset(seed=int(ep["env_seed"]))
    qpos = [env.unwrapped.data.qpos.copy()]
    rewards = [0.0]
    for a in ep["actions"][:-1]:
        _, r, *_ = env.step(a)
        qpos.append(env.unwrapped.data.qpos.copy())
        rewards.append(r)
    assert np.allclose(qpos, ep["qpos"]) and np.allclose(rewards, ep["rewards"], atol=1e-6)
    # the stored camera sees the arena: its centre projects inside the image, in front of the camera
    from worldsim.sim.camera import project

    u, v = project(np.zeros(3), ep["intrinsics"][0], ep["extrinsics"][0])
    assert 0 < u < 48 and 0 < v < 32


def test_a_terminated_episode_ends_there_and_its_slot_is_padded(tmp_path):
    """Hopper-v5 terminates when it falls: the episode's length is the frames up to termination, the last row is
    the terminating one, and the rest of its fixed-size slot stays zero (readers cut at episode_length)."""
    path = tmp_path / "hopper.zarr"
    tiny(path, scene="Hopper-v5", episodes=1, frames=150, resolution=16, policy="uniform")
    s = open_store(path)
    ep = s.episode("train", 0)
    n = int(ep["episode_length"])
    assert 2 <= n < 150 and ep["frames"].shape[0] == n
    assert ep["terminations"][-1] and not ep["terminations"][:-1].any() and not ep["actions"][-1].any()
    g = zarr.open_group(str(path), mode="r")["train"]
    assert not g["frames"][n:150].any() and not g["qpos"][n:150].any()


def test_policies_cover_the_action_box(tmp_path, monkeypatch):
    from gymnasium.spaces import Box

    space = Box(-2.0, 1.0, (3,), np.float32)
    rng = np.random.default_rng(0)
    smooth = policies.make_policy("smooth", {"tau": 10}).episode(rng, space, "x")
    a = np.array([smooth(t, {}) for t in range(4000)])
    assert a.min() >= -2 and a.max() <= 1
    lag1 = np.mean([np.corrcoef(a[:-1, d], a[1:, d])[0, 1] for d in range(3)])
    assert lag1 > 0.8  # temporally correlated, like a controller
    hist = np.histogram(a[:, 0], bins=4, range=(-2, 1))[0] / len(a)
    assert hist.min() > 0.15  # and still covers the whole range (uniform marginal)
    uni = policies.make_policy("uniform").episode(rng, space, "x")
    u = np.array([uni(t, {}) for t in range(500)])
    assert abs(np.corrcoef(u[:-1, 0], u[1:, 0])[0, 1]) < 0.15 and u.min() >= -2 and u.max() <= 1
    held = policies.make_policy("uniform", {"hold": 5}).episode(np.random.default_rng(0), space, "x")
    h = np.array([held(t, {}) for t in range(500)])
    assert (h[1:] != h[:-1]).any(1).nonzero()[0].tolist() == list(range(4, 499, 5))  # a fresh draw every 5th frame
    same = policies.make_policy("uniform").episode(np.random.default_rng(0), space, "x")
    assert np.array_equal(np.array([same(t, {}) for t in range(0, 500, 5)]), h[::5])  # the same stream of draws
    with pytest.raises(ConfigError, match=">= 1") as e:
        policies.make_policy("uniform", {"hold": 0})
    assert e.value.field == "policy_options.hold"
    assert not policies.make_policy("zero").episode(rng, Box(-1, 1, (2,)), "x")(0, {}).any()
    with pytest.raises(ConfigError, match="no scripted policy"):
        policies.make_policy("scripted").episode(rng, space, "bounce")
    with pytest.raises(ConfigError, match="unknown option"):
        policies.make_policy("smooth", {"sigma": 1})

    # a user's callable, by `module:function`, through the CLI
    mod = tmp_path / "my_policy.py"
    mod.write_text("import numpy as np\ndef act(t, state, rng, space):\n    return np.full(space.shape, 0.01 * t)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert cli(["record", str(tmp_path / "c.zarr"), "--scene", "Reacher-v5", "--episodes", "1", "--frames", "5",
                "--resolution", "16", "--policy", "callable", "--policy-option", "function=my_policy:act", "--quiet"]) == 0
    acts = open_store(tmp_path / "c.zarr").episode("train", 0)["actions"]
    assert np.allclose(acts[:-1, 0], 0.01 * np.arange(4))


def test_scripted_reacher_reaches(tmp_path):
    path = tmp_path / "r.zarr"
    record(RecordConfig(store=str(path), scene="Reacher-v5", episodes=1, frames=40, resolution=16,
                        policy="scripted", progress=False))
    r = open_store(path).episode("train", 0)["rewards"]
    assert r[-5:].mean() > r[1:4].mean()  # closer to the target at the end than at the start


def test_heldout_combinations_and_ood_splits(tmp_path):
    path = tmp_path / "h.zarr"
    kw = dict(frames=4, holdout="radius", episodes=6)
    tiny(path, **kw)
    tiny(path, split="heldout", **kw)
    tiny(path, split="ood", **{**kw, "episodes": 3})
    s = open_store(path)
    assert s.attrs["holdout"]["quantity"] == "radius"
    lo, hi = 0.08, 0.14  # bounce's id range for radius
    mid = (lo + hi) / 2
    for split in ("train", "heldout"):
        for i in s.committed(split):
            radius = s.episode(split, int(i), ["params"])["params"]["radius"]
            for k, r in enumerate(radius):
                upper = r >= mid
                held = upper if k % 2 == 0 else not upper  # object k's held-out half
                assert lo <= r <= hi and held == (split == "heldout"), (split, k, r)
    for i in s.committed("ood"):
        p = s.episode("ood", int(i), ["params"])["params"]
        assert all(not (lo <= r <= hi) for r in p["radius"]) and all(not (1.0 <= v <= 3.0) for v in p["speed"])
    assert s.split("heldout").attrs["distribution"] == "heldout"


def test_explicit_ranges(tmp_path):
    path = tmp_path / "r.zarr"
    tiny(path, episodes=3, frames=4, split="narrow", distribution="id", ranges={"speed": [2.0, 2.1]})
    s = open_store(path)
    for i in s.committed("narrow"):
        assert all(2.0 <= v <= 2.1 for v in s.episode("narrow", int(i), ["params"])["params"]["speed"])


def test_count_range_records_that_many_objects_and_a_count_outside_the_scene_is_an_error(tmp_path):
    path = tmp_path / "one.zarr"
    tiny(path, episodes=3, frames=4, ranges={"count": [1, 1]})
    s = open_store(path)
    for i in s.committed("train"):
        ep = s.episode("train", int(i), ["params", "object_active"])
        assert ep["params"]["count"] == 1
        assert ep["object_active"].astype(bool).tolist() == [[True, False, False]] * 4  # only the red ball, every frame
    for bad in ([0, 1], [1.5, 2], [2, 4]):
        with pytest.raises(ConfigError, match="count range") as e:
            tiny(tmp_path / "bad.zarr", episodes=1, frames=2, ranges={"count": bad})
        assert e.value.field == "ranges.count"


def test_yaml_configs_load_and_unknown_keys_are_errors(tmp_path):
    for f in sorted((ROOT / "configs" / "record").glob("*.yaml")):
        cfg = load_config(f).check()
        assert cfg.store and cfg.episodes > 0, f
    bad = tmp_path / "bad.yaml"
    bad.write_text("scene: bounce\nepisodez: 3\n")
    with pytest.raises(ConfigError, match="unknown key") as e:
        load_config(bad)
    assert (e.value.field, e.value.source) == ("episodez", str(bad))
    # the debug preset records, with command-line options overriding the file
    out = tmp_path / "dbg.zarr"
    assert cli(["record", "--config", str(ROOT / "configs/record/bounce_debug.yaml"), str(out), "--episodes", "2",
                "--quiet"]) == 0
    s = open_store(out)
    assert s.committed("train").tolist() == [0, 1] and s.attrs["frames_per_episode"] == 16


@pytest.mark.parametrize("argv, cls, field", [
    (["--scene", "no_such_scene"], SceneError, "scene"),
    (["--scene", "CartPole-v1"], ConfigError, "scene"),  # a gymnasium env without MuJoCo state
    (["--episodes", "0"], ConfigError, "episodes"),
    (["--episodes", "-3"], ConfigError, "episodes"),
    (["--frames", "0"], ConfigError, "frames"),
    (["--workers", "0"], ConfigError, "workers"),
    (["--start", "-1"], ConfigError, "start"),
    (["--split", "heldout"], ConfigError, "holdout"),
    (["--policy", "scripted"], ConfigError, "policy"),
])
def test_bad_arguments_are_one_clear_line(tmp_path, capsys, argv, cls, field):
    from worldsim.data.recorder import add_arguments, config_from_args

    assert cli(["record", str(tmp_path / "x.zarr"), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("worldsim: error:") and field in err[0]
    import argparse

    p = argparse.ArgumentParser()
    add_arguments(p)
    with pytest.raises(cls) as e:
        record(config_from_args(p.parse_args([str(tmp_path / "y.zarr"), "--quiet", *argv])))
    assert e.value.field == field


def test_appending_with_other_settings_is_refused(tmp_path):
    path = tmp_path / "a.zarr"
    tiny(path, episodes=1)
    for kw, field in [({"scene": "Reacher-v5"}, "scene"), ({"resolution": 48}, "resolution"),
                      ({"frame_skip": 100}, "frame_skip"), ({"frames": 11}, "frames_per_episode"),
                      ({"seed": 1}, "seed"), ({"policy": "zero"}, "train.policy")]:
        with pytest.raises(StoreError, match="recorded with") as e:
            tiny(path, episodes=2, **kw)
        assert e.value.field == field, kw
    assert open_store(path).committed("train").tolist() == [0]  # nothing was written by the refused runs


def test_non_writable_path_is_refused(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot write") as e:
        tiny(blocker / "s.zarr")
    assert str(blocker / "s.zarr") == e.value.source
    with pytest.raises(StoreError, match="cannot write"):
        tiny(Path("/proc/worldsim-test.zarr"))


def test_a_concurrent_writer_on_the_same_episodes_is_refused(tmp_path):
    path = tmp_path / "c.zarr"
    tiny(path, episodes=1)
    other = Claims(path)  # a live writer (this very process) holds episode 2
    other.take("train.000000002", "episode 2")
    with pytest.raises(StoreError, match=f"being written by pid {os.getpid()}") as e:
        tiny(path, episodes=4)
    assert e.value.field == "train.000000002"
    s = open_store(path)
    assert s.committed("train").tolist() == [0]  # the refused run wrote nothing
    assert not (path / "claims" / "train.000000001").exists()  # and released what it had claimed
    other.release_all()
    assert tiny(path, episodes=4).recorded == 3

    # a claim left by a dead process (here: a finished child) is stale and taken over
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claim = path / "claims" / "train.000000005"
    claim.mkdir()
    holder = {"host": os.uname().nodename, "pid": int(child.stdout), "proc_start": 1, "since": "earlier"}
    (claim / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group", "attributes": {"holder": holder}}))
    assert tiny(path, episodes=6).recorded == 2


def test_bench_record_json():
    out = run_cli("bench", "record", "--quick", "--json")
    assert out.returncode == 0, out.stderr
    rep = json.loads(out.stdout)
    figures = rep["figures"]
    bare = figures["bare loop bounce 64px (1 process)"]
    one, two = figures["recorder bounce 64px, 1 worker"], figures["recorder bounce 64px, 2 workers"]
    assert all(math.isfinite(x) and x > 0 for x in (bare, one, two))
    ratios = {r["figure"]: r["ratio"] for r in rep["rows"]}
    assert math.isclose(ratios["recorder bounce 64px, 1 worker"], one / bare)
    assert math.isclose(ratios["recorder bounce 64px, 2 workers"], two / one)

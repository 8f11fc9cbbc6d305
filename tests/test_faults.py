"""Fault injection with real processes (issue 12): `worldsim record` and `worldsim fit` are SIGKILLed at chosen
points and rerun (or resumed); every time the result equals an uninterrupted run, with nothing lost or duplicated.
A disk that fills up and a store that turns read-only mid-run give one clear error line and leave the store
readable.

How a kill lands in a window that lasts microseconds (a chunk or checkpoint written to its temporary name, not yet
renamed into place): the child runs with `tests/plugins/stall` on PYTHONPATH, whose `sitecustomize` adds an audit
hook that holds any `os.rename`/`os.replace` of a matching source path for 60 s. The test waits until that
temporary file exists — so the process is provably inside the window — and kills it. Production code has no hook;
other kill points are found by watching the store's or run folder's files.

Ten cases: record killed at 5 points, fit killed at 3 points, a full disk, a store turning read-only.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from worldsim.data.recorder import RecordConfig, record
from worldsim.data.store import open_store

from conftest import ROOT
from test_record import assert_same_store

EXE = str(Path(sys.executable).with_name("worldsim"))
STALL = str(ROOT / "tests" / "plugins" / "stall")
# 128 px x 30 frames: two `frames` chunks per episode (15 frames each), so "between chunks" exists.
REC = dict(scene="bounce", episodes=4, frames=30, resolution=128)
REC_ARGS = [x for k, v in REC.items() for x in (f"--{k}", str(v))] + ["--quiet"]
DEBUG = ROOT / "configs" / "train" / "debug.yaml"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def wait_for(predicate, proc: subprocess.Popen, what: str, timeout: float = 120.0):
    """Poll until `predicate()` is truthy (returned); fail if the process ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = predicate()
        if got:
            return got
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the process ended (rc {proc.returncode}) before {what}:\n{out}")
        time.sleep(0.005)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def committed(path: Path) -> list[int]:
    try:
        return open_store(path).committed("train").tolist()
    except Exception:  # not created yet
        return []


# --- record ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted recording every killed one must end equal to."""
    path = tmp_path_factory.mktemp("ref") / "ref.zarr"
    record(RecordConfig(store=str(path), progress=False, **REC))
    return path


def stall_env(mark: Path, pattern: str, event: str = "os.rename", skip: int = 0, release: Path | None = None) -> dict:
    """Environment that holds the child at the first matching call (tests/plugins/stall/sitecustomize.py) and
    creates `mark` (holding the held path) once it is held."""
    env = {"PYTHONPATH": STALL, "WORLDSIM_TEST_STALL": pattern, "WORLDSIM_TEST_STALL_EVENT": event,
           "WORLDSIM_TEST_STALL_SKIP": str(skip), "WORLDSIM_TEST_STALL_MARK": str(mark)}
    return {**env, "WORLDSIM_TEST_STALL_RELEASE": str(release)} if release else env


def held(mark: Path, proc: subprocess.Popen, what: str) -> Path:
    """Wait until the child is held at its stall point; the path of the call being held."""
    wait_for(lambda: mark.exists() and mark.read_text(), proc, what, timeout=300)
    return Path(mark.read_text())


def start_record(path: Path, stall: str | None = None, event: str = "os.rename",
                 release: Path | None = None) -> subprocess.Popen:
    mark = path.parent / "held"
    env = {**ENV, **(stall_env(mark, stall, event, release=release) if stall else {})}
    return subprocess.Popen([EXE, "record", str(path), *REC_ARGS], env=env, cwd=path.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def rerun_equals_reference(path: Path, reference: Path, done_before: list[int]) -> None:
    """Readers saw only complete episodes; the same command again records exactly the missing ones; the store then
    equals the uninterrupted one (every array, attribute and episode index; no claim left)."""
    for i in done_before:  # every episode visible after the kill is complete and right
        a, b = open_store(path).episode("train", i), open_store(reference).episode("train", i)
        assert all(np.array_equal(a[n], b[n]) for n in ("frames", "qpos", "object_centroid"))
    res = record(RecordConfig(store=str(path), progress=False, **REC))
    assert (res.recorded, res.skipped) == (REC["episodes"] - len(done_before), len(done_before))
    assert_same_store(reference, path)
    idx = open_store(path).split("train")["episode_index"][:]
    assert sorted(idx.tolist()) == list(range(REC["episodes"]))  # nothing lost, nothing duplicated
    assert not list(path.rglob("*.partial"))  # nor a killed writer's temporary chunk left on disk


def test_record_killed_while_claiming_before_any_episode_is_recorded(tmp_path, reference):
    """Held just before it claims episode 3 (episodes 0-2 claimed, nothing recorded): stale claims and a prepared,
    empty store are left; the rerun takes the claims over."""
    path = tmp_path / "s.zarr"
    proc = start_record(path, stall=r"/claims/train\.000000003$", event="os.mkdir")
    held(tmp_path / "held", proc, "episode 3 was being claimed")
    kill(proc)
    assert len(list((path / "claims").glob("train.*"))) == 3 and committed(path) == []
    rerun_equals_reference(path, reference, [])


def test_record_killed_while_a_frames_chunk_is_being_written(tmp_path, reference):
    """Episode 1's first frames chunk (chunk 2) is in its temporary file when the kill lands."""
    path = tmp_path / "s.zarr"
    proc = start_record(path, stall=r"/train/frames/c/2/.*\.partial$")
    tmp = held(tmp_path / "held", proc, "episode 1's first chunk was being written")
    kill(proc)
    assert tmp.exists() and not (path / "train" / "frames" / "c" / "2" / "0" / "0" / "0").exists()
    done = committed(path)
    assert done == [0]  # the torn episode is invisible; the one before is complete
    rerun_equals_reference(path, reference, done)


def test_record_killed_while_an_episodes_state_arrays_are_being_written(tmp_path, reference):
    """Episode 2's frames are written, its qpos chunk is in its temporary file, nothing else of it committed."""
    path = tmp_path / "s.zarr"
    proc = start_record(path, stall=r"/train/qpos/c/2/.*\.partial$")
    assert "/qpos/c/2/" in str(held(tmp_path / "held", proc, "episode 2's qpos was being written"))
    kill(proc)
    assert (path / "train" / "frames" / "c" / "5").exists()  # its frames were all written
    done = committed(path)
    assert done == [0, 1]
    rerun_equals_reference(path, reference, done)


def test_record_killed_while_the_commit_mark_is_being_written(tmp_path, reference):
    """Everything of episode 3 is written except its commit mark, which is in its temporary file."""
    path = tmp_path / "s.zarr"
    proc = start_record(path, stall=r"/train/committed/c/3\..*\.partial$")
    assert held(tmp_path / "held", proc, "episode 3's commit mark was being written").exists()
    kill(proc)
    assert (path / "train" / "caption" / "c" / "3").exists()  # its last data array is in place
    done = committed(path)
    assert done == [0, 1, 2]  # without its mark the episode does not exist
    rerun_equals_reference(path, reference, done)


def test_record_killed_after_the_last_commit_while_releasing_claims(tmp_path, reference):
    """All episodes committed, the claims not yet released: the rerun records nothing and sweeps the stale claims."""
    path = tmp_path / "s.zarr"
    proc = start_record(path, stall=r"/claims/train\.000000003$", event="shutil.rmtree")  # held as it releases
    held(tmp_path / "held", proc, "the last claim was being released")
    assert committed(path) == [0, 1, 2, 3] and (path / "claims" / "train.000000003").exists()
    kill(proc)
    rerun_equals_reference(path, reference, [0, 1, 2, 3])


# --- disk full, read-only -------------------------------------------------------------------------------------


def _one_error_line(out: str) -> str:
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("worldsim: error:")]
    assert len(lines) == 1, out
    return lines[0]


def _limit_file_size(limit: int):
    def apply():
        # A full disk, simulated for this child alone: writes past `limit` bytes fail with EFBIG (SIGXFSZ, which
        # would kill the process instead, is ignored). Works without root, unlike mounting a small tmpfs.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_disk_full_mid_run_is_one_clear_line_and_the_store_stays_readable(tmp_path, reference):
    path = tmp_path / "s.zarr"
    record(RecordConfig(store=str(path), progress=False, **{**REC, "episodes": 2}))
    # 3000 bytes: metadata (< 2 KB) still fits, a 128 px frames chunk (4-6 KB compressed) does not
    res = subprocess.run([EXE, "record", str(path), *REC_ARGS], env=ENV, capture_output=True, text=True,
                         preexec_fn=_limit_file_size(3000), timeout=120)
    assert res.returncode == 2
    line = _one_error_line(res.stderr)
    assert line.startswith(f"worldsim: error: {path}: train/frames: cannot write episode 2: File too large"), line
    store = open_store(path)
    assert store.committed("train").tolist() == [0, 1] and store.verify() == 2  # readable, nothing torn
    rerun_equals_reference(path, reference, [0, 1])  # with space again, the same command completes it


@contextlib.contextmanager
def read_only(folder: Path):
    """Make `folder` read-only for this process and its children: a read-only bind mount as root (root ignores
    permission bits), else permission bits."""
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")] if p.is_dir()}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            yield
        finally:
            for p, m in modes.items():
                p.chmod(m)


def test_store_turning_read_only_mid_run_is_one_clear_line_and_the_store_stays_readable(tmp_path, reference):
    path, release = tmp_path / "s.zarr", tmp_path / "release"
    # held inside episode 1's commit (its mark in a temporary file) until `release` exists
    proc = start_record(path, stall=r"/train/committed/c/1\..*\.partial$", release=release)
    assert held(tmp_path / "held", proc, "episode 1's commit mark was being written").exists()
    with read_only(path):
        release.touch()
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2, out
        line = _one_error_line(out)
        assert line.startswith(f"worldsim: error: {path}: train/committed: cannot write episode 1: "), line
        store = open_store(path)  # readable while read-only
        assert store.committed("train").tolist() == [0] and store.verify() == 1
    rerun_equals_reference(path, reference, [0])


# --- fit ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fit_store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fitdata") / "bounce16.zarr"
    for split, n in (("train", 6), ("val", 2)):
        record(RecordConfig(store=str(path), scene="bounce", split=split, episodes=n, frames=12, resolution=16,
                            progress=False))
    return path


def fit(run: Path, store: Path, *extra: str, env: dict | None = None, wait: bool = True):
    args = [EXE, "fit", "--config", str(DEBUG), "--data.stores", f"[{store}]", "--trainer.default_root_dir", str(run),
            *extra]
    if not wait:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**ENV, **(env or {})})
    res = subprocess.run(args, capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


@pytest.fixture(scope="module")
def fit_reference(fit_store, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("fitref") / "run"
    fit(run, fit_store)
    return run


def test_two_identical_fit_runs_export_identical_weights(fit_store, fit_reference, tmp_path):
    """Reproducibility (docs/reproducibility.md): same seed and config, same thread count -> bit-equal weights."""
    fit(tmp_path / "again", fit_store)
    assert_same_weights(fit_reference, tmp_path / "again")
    from safetensors import safe_open

    digests = []
    for run in (fit_reference, tmp_path / "again"):
        with safe_open(str(run / "model.safetensors"), framework="pt") as f:
            digests.append(f.metadata()["sha256"])
    assert digests[0] == digests[1]  # the files differ only in metadata naming their run folders


def _last_step(run: Path) -> int | None:
    last = run / "checkpoints" / "last.ckpt"
    return torch.load(last, weights_only=True, map_location="cpu")["global_step"] if last.exists() else None


@pytest.mark.parametrize("what, pattern, skip, step_after", [
    # `last.ckpt` is written from step 3 on (once `val/loss`, its monitor, exists): the 3rd write (step 5) held in
    # its temporary file, step 4's checkpoint must stay the one resumed
    ("checkpoint", r"/checkpoints/\.last\.ckpt\..*\.tmp$", 2, 4),
    # the first `last.ckpt` write: none exists yet, and `--ckpt_path last` starts from scratch
    ("first-checkpoint", r"/checkpoints/\.last\.ckpt\..*\.tmp$", 0, None),
    # the export at the end of training: the final checkpoint exists, resuming only exports again
    ("export", r"/\.model\.safetensors\..*\.tmp$", 0, 6),
], ids=["checkpoint", "first-checkpoint", "export"])
def test_fit_killed_while_writing_then_resumed_equals_an_uninterrupted_run(fit_store, fit_reference, tmp_path, what,
                                                                           pattern, skip, step_after):
    run = tmp_path / "run"
    proc = fit(run, fit_store, env=stall_env(tmp_path / "held", pattern, skip=skip), wait=False)
    tmp = held(tmp_path / "held", proc, f"the {what} was being written")
    kill(proc)
    assert tmp.exists()  # killed inside the window: the temporary file is there, not renamed
    assert _last_step(run) == step_after  # the checkpoint in place is the previous complete one (or none)
    assert not (run / "model.safetensors").exists()
    fit(run, fit_store, "--ckpt_path", "last")
    assert_same_weights(fit_reference, run)
    assert _last_step(run) == 6

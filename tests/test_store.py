"""The store as a contract: readable with plain zarr, checked on open, re-renderable, inspectable (issue 4)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

import worldsim  # noqa: F401  (sets MUJOCO_GL before mujoco loads)
from worldsim.cli import main as cli
from worldsim.data.inspect import summary
from worldsim.data.recorder import RecordConfig, record
from worldsim.data.schema import ARRAYS, ROOT_ATTRS, SCHEMA_VERSION, SPLIT_ATTRS
from worldsim.data.store import open_store
from worldsim.errors import StoreError

ROOT = Path(__file__).resolve().parents[1]


def tiny(path: Path, **kw) -> Path:
    cfg = dict(store=str(path), scene="bounce", episodes=3, frames=12, resolution=32, progress=False)
    record(RecordConfig(**{**cfg, **kw}))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "s.zarr"  # multi-shot: cuts between both cameras, from the CLI
    assert cli(["record", str(path), "--episodes", "3", "--frames", "12", "--resolution", "32", "--reset-option",
                "shots=random", "--quiet"]) == 0
    return path


PLAIN_ZARR_READER = r"""
import json, sys
import numpy as np
import zarr

path, expected = sys.argv[1], json.loads(sys.argv[2])
root = zarr.open_group(path, mode="r")
out = {"root_attrs": sorted(root.attrs), "groups": sorted(root.group_keys())}
train = root["train"]
out["split_attrs"] = sorted(train.attrs)
out["arrays"] = {n: [list(train[n].shape), str(train[n].dtype)] for n in sorted(train.array_keys())}
committed = np.flatnonzero(train["committed"][:] == 1)
out["committed"] = committed.tolist()
i = int(committed[-1])
start, length = int(train["episode_start"][i]), int(train["episode_length"][i])
frames = train["frames"][start:start + length]
out["episode"] = {"frames": list(frames.shape), "frames_dtype": str(frames.dtype),
                  "camera_names": [root.attrs["cameras"][c] for c in train["camera"][start:start + length]],
                  "params": json.loads(str(train["params"][i])), "caption": str(train["caption"][i])}
out["worldsim_imported"] = any(m == "worldsim" or m.startswith("worldsim.") for m in sys.modules)
print(json.dumps(out))
"""


def test_plain_zarr_finds_the_documented_arrays_and_attributes(store, tmp_path):
    """A reader with only zarr and numpy (a subprocess that never imports worldsim) finds the documented layout."""
    script = tmp_path / "reader.py"
    script.write_text(PLAIN_ZARR_READER)
    run = subprocess.run([sys.executable, str(script), str(store), "{}"], capture_output=True, text=True,
                         cwd=tmp_path, timeout=60)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["worldsim_imported"] is False
    assert set(ROOT_ATTRS) <= set(out["root_attrs"])
    assert out["groups"] == ["claims", "train"]
    assert set(SPLIT_ATTRS) <= set(out["split_attrs"])
    documented = {a.name for a in ARRAYS if a.when != "rewards"}  # bounce has no reward
    assert set(out["arrays"]) == documented
    slot = out["arrays"]["frames"][0][0] // 3
    assert out["arrays"]["frames"] == [[3 * slot, 32, 32, 3], "uint8"]
    assert out["arrays"]["object_pos"][0][1:] == [3, 3] and out["arrays"]["committed"] == [[3], "uint8"]
    assert out["committed"] == [0, 1, 2]
    ep = out["episode"]
    assert ep["frames"] == [12, 32, 32, 3] and ep["frames_dtype"] == "uint8"
    assert set(ep["camera_names"]) <= {"front", "tilted"}
    assert {"radius", "x", "z", "speed", "count"} <= set(ep["params"]) and isinstance(ep["caption"], str)


def test_store_attributes_and_episode_content(store):
    s = open_store(store)
    a = s.attrs
    got = (a["schema_version"], a["scene"], a["resolution"], a["frame_skip"], a["fps"])
    assert got == (SCHEMA_VERSION, "bounce", [32, 32], 200, 25.0)
    assert a["worldsim_version"] == worldsim.__version__ and a["frames_per_episode"] == 12
    ep = s.episode("train", 1)
    k = ep["intrinsics"][0]
    assert ep["frames"].shape == (12, 32, 32, 3) and ep["qpos"].shape == (12, 6)
    assert k[0, 2] == 16 and k[1, 2] == 16 and np.allclose(ep["extrinsics"][:, 3], [0, 0, 0, 1])
    # the object centroid is where the stored camera projects the object's stored world position
    from worldsim.sim.camera import project

    act = ep["object_active"][:, 0] & (ep["object_visible"][:, 0] > 0.9)
    uv = np.array([project(p, kk, e) for p, kk, e in zip(ep["object_pos"][:, 0], ep["intrinsics"], ep["extrinsics"])])
    assert act.any() and np.abs(uv[act] - ep["object_centroid"][act, 0]).max() < 1.5
    assert ep["episode_length"] == 12 and ep["episode_index"] == 1
    assert ep["time"][0] == 0.0 and np.allclose(np.diff(ep["time"]), 1 / 25)
    assert any(e["type"] == "shot" for e in ep["caption_events"])  # the env's events are stored beside the caption


def test_rerender_from_stored_state_equals_stored_frames(tmp_path):
    """Frames re-rendered from the stored params, qpos/qvel and camera of each frame equal the stored frames, bit
    for bit, through camera cuts (multi-shot episodes), at a non-square resolution."""
    from worldsim.data.rerender import rerender

    path = tiny(tmp_path / "r.zarr", episodes=3, frames=24, resolution=[24, 40], reset_options={"shots": "random"})
    s = open_store(path)
    assert len(set(s.split("train")["camera"][:].tolist())) == 2  # both cameras appear
    assert s.attrs["resolution"] == [24, 40]  # non-square
    for i in s.committed("train"):
        stored = s.episode("train", int(i), ["frames"])["frames"]
        np.testing.assert_array_equal(rerender(s, "train", int(i)), stored)
    # and the check can fail: a frame re-rendered from another frame's state differs
    ep = s.episode("train", 0, ["frames", "qpos"])
    assert not np.array_equal(ep["frames"][0], ep["frames"][-1])


def _set_root_attr(path: Path, key: str, value) -> None:
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"][key] = value
    (path / "zarr.json").write_text(json.dumps(meta))


def test_open_refuses_other_schema_v2_and_missing_arrays(tmp_path, store):
    import shutil

    other = tmp_path / "other.zarr"
    shutil.copytree(store, other)
    _set_root_attr(other, "schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(StoreError, match="schema version") as e:
        open_store(other)
    assert e.value.field == "schema_version"

    v2 = tmp_path / "v2.zarr"
    zarr.open_group(str(v2), mode="w", zarr_format=2).create_array("frames", shape=(2, 2), dtype="uint8")
    with pytest.raises(StoreError, match="zarr v2"):
        open_store(v2)

    missing = tmp_path / "missing.zarr"
    shutil.copytree(store, missing)
    shutil.rmtree(missing / "train" / "qvel")
    with pytest.raises(StoreError, match="missing") as e:
        open_store(missing)
    assert e.value.field == "train/qvel"

    with pytest.raises(StoreError, match="no store"):
        open_store(tmp_path / "nowhere.zarr")
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w")
    with pytest.raises(StoreError, match="not a worldsim"):
        open_store(plain)


def test_truncated_chunk_is_a_clear_error(tmp_path, capsys):
    path = tiny(tmp_path / "t.zarr", episodes=2, frames=12)
    chunk = next(p for p in (path / "train" / "frames" / "c").rglob("*") if p.is_file() and not p.name.startswith("."))
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) // 2])
    s = open_store(path)  # metadata is intact: the damage shows when the chunk is read
    with pytest.raises(StoreError, match="truncated or corrupt") as e:
        s.verify()
    assert e.value.field == "train/frames"
    assert cli(["inspect", str(path), "--verify"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("worldsim: error:") and "train/frames" in err[0]


def test_uncommitted_episode_is_invisible(tmp_path):
    path = tiny(tmp_path / "u.zarr", episodes=3, frames=12)
    zarr.open_group(str(path), mode="r+")["train"]["committed"][1] = 0  # as if its writer died before committing
    s = open_store(path)
    assert s.committed("train").tolist() == [0, 2]
    with pytest.raises(StoreError, match="not committed"):
        s.episode("train", 1)


def test_inspect_summary_video_and_contact_sheet(store, tmp_path, capsys):
    assert cli(["inspect", str(store), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    sp = summary["splits"]["train"]
    assert (sp["episodes"], sp["frames"], sp["distribution"]) == (3, 36, "id")
    lo, hi = sp["param_ranges"]["radius"]
    assert 0.08 <= lo <= hi <= 0.14  # the spec's id range
    assert sp["disk_bytes"] > 0 and sp["raw_frame_bytes"] == 36 * 32 * 32 * 3

    gif, sheet = tmp_path / "ep.gif", tmp_path / "ep.png"
    assert cli(["inspect", str(store), "--episode", "2", "--video", str(gif), "--sheet", str(sheet)]) == 0
    text = capsys.readouterr().out
    assert "train: 3/3 episodes committed, 36 frames" in text and f"wrote {gif}" in text
    import imageio.v3 as iio

    assert iio.imread(gif).shape[0] == 12  # every frame of the episode
    assert gif.with_suffix(".txt").exists()  # its caption beside it
    png = iio.imread(sheet)
    assert png.ndim == 3 and png.shape[0] > 100 and png.shape[1] > 400


def test_docs_describe_every_array_and_attribute():
    """docs/data.md is the contract: it names every array and attribute the schema holds, and its version."""
    doc = (ROOT / "docs" / "data.md").read_text()
    for name in [a.name for a in ARRAYS] + list(ROOT_ATTRS) + list(SPLIT_ATTRS):
        assert re.search(rf"`{name}`", doc), f"docs/data.md does not document `{name}`"
    assert f"schema version {SCHEMA_VERSION}" in doc.lower()


def test_inspect_measures_how_the_actions_move_the_agent(store, tmp_path, capsys):
    """`push` under uniform random actions: the pusher's step follows its velocity command, x right and y up the
    table (down the image); `bounce` has no actions to measure."""
    path = tiny(tmp_path / "push.zarr", scene="push", episodes=4, frames=24, policy="uniform")
    assert cli(["inspect", str(path), "--json"]) == 0
    m = json.loads(capsys.readouterr().out)["action_px"]
    (xx, xy), (yx, yy) = m["per_action"]
    assert m["object"] == "pusher" and m["r2"] > 0.5 and m["steps"] >= 60
    assert 0.6 < xx < 1.3 and -1.3 < yy < -0.6 and abs(xy) < 0.2 and abs(yx) < 0.2   # ~0.94 px per unit at 32 px
    assert summary(open_store(store))["action_px"] is None

"""The bad-input catalogue (issue 12): every entry is run through the real `worldsim` command in a subprocess and
must exit non-zero with ONE line `worldsim: error: <file>: <field>: <message>` (no traceback unless `--debug`).

The table `CASES` is the contract; `docs/errors.md` is generated from it and the messages the runs really print
(`WORLDSIM_WRITE_ERRORS_DOC=1 pytest tests/test_bad_inputs.py` rewrites the doc; `test_docs_list_every_case` fails
when the doc and the catalogue disagree). Many of these inputs are also tested at the Python level elsewhere
(test_scene_errors, test_store, test_record, test_training, test_weights, test_prompts): this module is the
command-line contract on top.

Speed: the ~35 commands are started up front by a module fixture, a few at a time (most of a command's cost is
importing worldsim's dependencies), and each test then checks one result.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import ROOT

EXE = str(Path(sys.executable).with_name("worldsim"))
DEBUG_FIT = ROOT / "configs" / "train" / "debug.yaml"
DOC = ROOT / "docs" / "errors.md"


@dataclass(frozen=True)
class Case:
    """One bad input. `argv` may hold `{w}` (the work folder of the module's fixtures); `source` and `field` are
    what the error line must name (`{w}` allowed), `says` a phrase of the message."""

    name: str
    kind: str  # scene, spec, store, config, weights, action, prompt, cli
    what: str  # the bad input, in words
    argv: tuple[str, ...]
    source: str
    field: str
    says: str
    env: dict = field(default_factory=dict, hash=False)


def _c(name, kind, what, argv, source, field_, says, **env):
    return Case(name, kind, what, tuple(argv.split()) if isinstance(argv, str) else tuple(argv), source, field_, says,
                env)


FIT = f"fit --config {DEBUG_FIT} --data.stores [{{w}}/s16.zarr] --trainer.default_root_dir {{w}}/runs/fit"
CASES: list[Case] = [
    # --- scenes and their specs (`worldsim scenes --register FOLDER`) ---
    _c("malformed-mjcf", "scene", "MJCF that is not well-formed XML", "scenes --register {w}/scenes/mjcf bounce",
       "{w}/scenes/mjcf/bounce.xml", "line 14", "does not compile"),
    _c("unknown-body", "spec", "the spec names a body the MJCF lacks", "scenes --register {w}/scenes/body",
       "{w}/scenes/body/spec.yaml", "objects[2].body", "ball9"),
    _c("clashing-colours", "spec", "two objects' colours closer than 80 levels", "scenes --register {w}/scenes/colour",
       "{w}/scenes/colour/spec.yaml", "objects[1].colour", "too close"),
    _c("colour-like-scenery", "spec", "an object coloured like the backdrop", "scenes --register {w}/scenes/backdrop",
       "{w}/scenes/backdrop/spec.yaml", "objects[2].colour", "backdrop"),
    _c("unknown-spec-key", "spec", "a misspelt key in spec.yaml", "scenes --register {w}/scenes/key",
       "{w}/scenes/key/spec.yaml", "max_frame", "unknown key"),
    _c("unknown-camera", "spec", "the spec lists a camera the MJCF lacks", "scenes --register {w}/scenes/camera",
       "{w}/scenes/camera/spec.yaml", "cameras[1]", "above"),
    _c("spec-not-yaml", "spec", "spec.yaml that is not YAML", "scenes --register {w}/scenes/yaml",
       "{w}/scenes/yaml/spec.yaml", "line 7", "not valid YAML"),
    _c("unknown-scene", "scene", "a scene name nobody registered", "record {w}/x.zarr --scene bouncy --quiet",
       "command line", "scene", "'bouncy'"),
    # --- actions (a user's policy through `record --policy callable`) ---
    _c("nan-action", "action", "a policy returns NaN", "record {w}/a1.zarr --scene push --frames 3 --episodes 1 "
       "--resolution 16 --policy callable --policy-option function=badpolicy:nan --quiet",
       "badpolicy:nan", "action", "NaN or inf", PYTHONPATH="{w}"),
    _c("inf-action", "action", "a policy returns inf", "record {w}/a2.zarr --scene push --frames 3 --episodes 1 "
       "--resolution 16 --policy callable --policy-option function=badpolicy:inf --quiet",
       "badpolicy:inf", "action", "NaN or inf", PYTHONPATH="{w}"),
    _c("action-wrong-shape", "action", "a policy returns 3 numbers for a 2-D action", "record {w}/a3.zarr --scene push "
       "--frames 3 --episodes 1 --resolution 16 --policy callable --policy-option function=badpolicy:three --quiet",
       "badpolicy:three", "action", "expected shape (2,)", PYTHONPATH="{w}"),
    _c("action-wrong-dtype", "action", "a policy returns text", "record {w}/a4.zarr --scene push --frames 3 "
       "--episodes 1 --resolution 16 --policy callable --policy-option function=badpolicy:text --quiet",
       "badpolicy:text", "action", "must be numeric", PYTHONPATH="{w}"),
    _c("action-out-of-bounds", "action", "a policy returns 5 where the box ends at 1",
       "record {w}/a5.zarr --scene push "
       "--frames 3 --episodes 1 --resolution 16 --policy callable --policy-option function=badpolicy:big --quiet",
       "badpolicy:big", "action", "outside bounds", PYTHONPATH="{w}"),
    _c("policy-not-importable", "action", "a callable policy that does not exist", "record {w}/a6.zarr --scene push "
       "--frames 3 --episodes 1 --resolution 16 --policy callable --policy-option function=nosuch.module:f --quiet",
       "command line", "policy_options.function", "nosuch"),
    # --- stores ---
    _c("zarr-v2-store", "store", "a zarr v2 store", "inspect {w}/v2.zarr", "{w}/v2.zarr", "zarr_format", "zarr v2"),
    _c("schema-version", "store", "a store of a newer schema version", "inspect {w}/schema.zarr", "{w}/schema.zarr",
       "schema_version", "schema version 2"),
    _c("truncated-chunk", "store", "a frames chunk cut in half", "inspect {w}/truncated.zarr --verify",
       "{w}/truncated.zarr", "train/frames", "truncated or corrupt"),
    _c("missing-array", "store", "a store missing an array", "inspect {w}/missing.zarr", "{w}/missing.zarr",
       "train/qvel", "missing"),
    _c("not-a-store", "store", "an empty folder given as a store", "inspect {w}/empty", "{w}/empty", "zarr.json",
       "not a zarr v3 store"),
    _c("episode-not-committed", "store", "an episode index past the committed ones",
       "inspect {w}/s16.zarr --episode 40 --sheet {w}/sheet.png", "{w}/s16.zarr", "train/committed", "not committed"),
    _c("wrong-resolution-append", "store", "appending 32 px episodes to a 16 px store",
       "record {w}/s16.zarr --resolution 32 --frames 12 --episodes 8 --quiet", "{w}/s16.zarr", "resolution",
       "recorded with resolution"),
    _c("empty-split", "store", "training with a validation split that has no episodes", FIT + " --data.val_split test",
       "{w}/s16.zarr", "data.val_split", "no split 'test'"),
    _c("episode-shorter-than-window", "store", "a training window longer than every episode",
       FIT + " --data.windows [40]", "{w}/s16.zarr", "data.windows", "40 frames"),
    # --- configs ---
    _c("record-config-unknown-key", "config", "a misspelt key in a record config",
       "record --config {w}/record_key.yaml",
       "{w}/record_key.yaml", "episode", "unknown key"),
    _c("record-config-bad-value", "config", "frames: 1 in a record config", "record --config {w}/record_frames.yaml",
       "{w}/record_frames.yaml", "frames", "at least 2 frames"),
    _c("record-config-not-yaml", "config", "a record config that is not YAML", "record --config {w}/record_yaml.yaml",
       "{w}/record_yaml.yaml", "line 1", "not valid YAML"),
    _c("fit-config-unknown-key", "config", "a misspelt key in a training config",
       f"fit --config {{w}}/fit_key.yaml --data.stores [{{w}}/s16.zarr]", "{w}/fit_key.yaml", "model.learning_rate",
       "unknown key"),
    _c("fit-stores-frame-skip", "config", "two stores of different frame skip in one run",
       f"fit --config {DEBUG_FIT} --data.stores [{{w}}/s16.zarr,{{w}}/skip.zarr] "
       "--trainer.default_root_dir {w}/runs/fs",
       "{w}/skip.zarr", "frame_skip", "differs"),
    _c("run-folder-escapes", "config", "a run folder with `..` components", f"fit --config {{w}}/fit_escape.yaml "
       "--data.stores [{w}/s16.zarr]", "{w}/fit_escape.yaml", "trainer.default_root_dir", "'..'"),
    # --- weights ---
    _c("tampered-weights", "weights", "weights whose tensor bytes were changed after export",
       "rollout {w}/tampered.safetensors --out {w}/o1 --frames 2", "{w}/tampered.safetensors", "sha256", "changed"),
    _c("truncated-weights", "weights", "a weights file cut short",
       "rollout {w}/short.safetensors --out {w}/o2 --frames 2",
       "{w}/short.safetensors", "header", "truncated or corrupt"),
    _c("not-worldsim-weights", "weights", "a plain safetensors file", "rollout {w}/plain.safetensors --out {w}/o3",
       "{w}/plain.safetensors", "format", "not a worldsim weights file"),
    _c("weights-other-scene", "weights", "weights trained on bounce, evaluated on collide",
       "evaluate --model {w}/w.safetensors --scene collide --episodes 1 --out {w}/e1", "{w}/w.safetensors",
       "scene.name", "trained for name='bounce'"),
    _c("weights-other-frame-skip", "weights", "weights rolled out from a store of another frame skip",
       "rollout {w}/w.safetensors --store {w}/skip.zarr --split train --out {w}/o4 --frames 2",
       "{w}/w.safetensors", "scene.frame_skip", "frame_skip"),
    _c("weights-other-resolution", "weights", "a rollout at a resolution the weights were not trained at",
       "rollout {w}/w.safetensors --resolution 32 --out {w}/o5 --frames 2", "{w}/w.safetensors", "scene.resolution",
       "trained at"),
    # --- prompts ---
    _c("contradictory-prompt", "prompt", "a prompt that sends one ball left and right",
       ["generate", "{w}/w.safetensors", "t2v", "--out", "{w}/g1", "--frames", "4", "--prompt",
        "a red ball moving left; the red ball moving right"], "prompt (bounce)", "prompt",
       "contradictory direction"),
    _c("non-utf8-prompt", "prompt", "a prompt whose bytes are not UTF-8",
       ["generate", "{w}/w.safetensors", "t2v", "--out", "{w}/g2", "--frames", "4", "--prompt", b"a red ball \xff"],
       "prompt (bounce)", "prompt", "not UTF-8"),
    _c("prompt-other-scene", "prompt", "a prompt for another scene", ["generate", "{w}/w.safetensors", "t2v", "--out",
       "{w}/g3", "--frames", "4", "--prompt", "push: the red block moves left"], "prompt (bounce)", "prompt",
       "for scene 'push'"),
    # --- command-line arguments ---
    _c("out-not-empty", "cli", "`--out` pointing at a non-empty folder", "demo --episodes 2 --out {w}/full",
       "{w}/full", "--out", "not empty"),
    _c("episodes-zero", "cli", "`--episodes 0`", "record {w}/z.zarr --episodes 0 --quiet", "command line",
       "episodes", "positive integer"),
    _c("resolution-not-a-size", "cli", "`--resolution big`", "record {w}/z.zarr --resolution big --quiet",
       "command line", "--resolution", "expected N or HxW"),
    _c("store-is-a-file", "cli", "a store path inside a regular file", "record {w}/full/keep.txt/s.zarr --quiet",
       "{w}/full/keep.txt/s.zarr", "store", "cannot write here"),
]


# --- the inputs --------------------------------------------------------------------------------------------------


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not in {path}"
    path.write_text(text.replace(old, new))


BAD_POLICY = '''
import numpy as np
nan = lambda t, state, rng, space: np.full(space.shape, np.nan, np.float32)
inf = lambda t, state, rng, space: np.full(space.shape, np.inf, np.float32)
three = lambda t, state, rng, space: np.zeros(3, np.float32)
text = lambda t, state, rng, space: "left"
big = lambda t, state, rng, space: np.full(space.shape, 5.0, np.float32)
'''


def _scenes(w: Path) -> None:
    from worldsim.sim.registry import builtin_dir

    edits = {"mjcf": ("bounce.xml", "</worldbody>", "</worldbdy>"),
             "body": ("spec.yaml", "body: ball2", "body: ball9"),
             "colour": ("spec.yaml", "colour: [40, 170, 60]", "colour: [210, 50, 45]"),
             "backdrop": ("spec.yaml", "colour: [40, 80, 230]", "colour: [225, 225, 215]"),
             "key": ("spec.yaml", "max_frames: 250", "max_frames: 250\nmax_frame: 3"),
             "camera": ("spec.yaml", "cameras: [front, tilted]", "cameras: [front, above]"),
             "yaml": ("spec.yaml", "max_frames: 250", "max_frames: [250"),
             }
    for name, (file, old, new) in edits.items():
        shutil.copytree(builtin_dir() / "bounce", w / "scenes" / name)
        _edit(w / "scenes" / name / file, old, new)


def _stores(w: Path) -> None:
    import zarr

    from worldsim.data.recorder import RecordConfig, record

    def rec(path, split="train", episodes=2, **kw):
        record(RecordConfig(store=str(path), scene="bounce", split=split, episodes=episodes, frames=12, resolution=16,
                            progress=False, **kw))

    rec(w / "s16.zarr", episodes=3)
    rec(w / "s16.zarr", split="val", episodes=1)
    rec(w / "skip.zarr", episodes=1, frame_skip=100)
    rec(w / "skip.zarr", split="val", episodes=1, frame_skip=100)
    zarr.open_group(str(w / "v2.zarr"), mode="w", zarr_format=2).create_array("frames", shape=(2, 2), dtype="uint8")
    for name in ("schema", "truncated", "missing"):
        shutil.copytree(w / "s16.zarr", w / f"{name}.zarr")
    meta = json.loads((w / "schema.zarr" / "zarr.json").read_text())
    meta["attributes"]["schema_version"] = 2
    (w / "schema.zarr" / "zarr.json").write_text(json.dumps(meta))
    chunk = next(p for p in sorted((w / "truncated.zarr" / "train" / "frames" / "c").rglob("*")) if p.is_file())
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    shutil.rmtree(w / "missing.zarr" / "train" / "qvel")
    (w / "empty").mkdir()


def _weights(w: Path) -> None:
    import dataclasses

    import torch
    from safetensors.torch import save_file

    from worldsim.diffusion.loss import LossConfig
    from worldsim.models import build_model
    from worldsim.models.load import save_model
    from worldsim.sim.registry import get_scene

    from worldsim.sim.scene_env import SceneEnv

    spec = get_scene("bounce").spec
    env = SceneEnv("bounce", resolution=16, visibility=False)
    fps = float(env.metadata["render_fps"])
    env.close()
    meta = {"name": "bounce", "resolution": [[16, 16]], "frame_skip": spec.frame_skip, "fps": fps,
            "cameras": list(spec.cameras), "action_dim": 0, "action_low": [], "action_high": [],
            "param_names": [], "windows": [4]}
    torch.manual_seed(0)
    net = build_model("debug", action_dim=0, camera_classes=len(spec.cameras), param_dim=0)
    good = save_model(w / "w.safetensors", net, meta, dataclasses.asdict(LossConfig()))
    data = bytearray(good.read_bytes())
    data[-9] ^= 0xFF  # a byte of the last tensor
    (w / "tampered.safetensors").write_bytes(bytes(data))
    (w / "short.safetensors").write_bytes(good.read_bytes()[: len(data) // 2])
    save_file({"x": torch.zeros(2)}, str(w / "plain.safetensors"))


def _configs(w: Path) -> None:
    (w / "record_key.yaml").write_text(f"store: {w}/rk.zarr\nepisode: 3\n")
    (w / "record_frames.yaml").write_text(f"store: {w}/rf.zarr\nframes: 1\n")
    (w / "record_yaml.yaml").write_text("store: [unclosed\n")
    debug = DEBUG_FIT.read_text()
    (w / "fit_key.yaml").write_text(debug.replace("  lr: 0.001", "  lr: 0.001\n  learning_rate: 0.1"))
    (w / "fit_escape.yaml").write_text(debug.replace("default_root_dir: runs/debug",
                                                     "default_root_dir: runs/../../escaped"))
    (w / "full").mkdir()
    (w / "full" / "keep.txt").write_text("precious")
    (w / "badpolicy.py").write_text(BAD_POLICY)


def _expand(s, w: Path):
    return s.replace("{w}", str(w)).encode() if isinstance(s, bytes) else s.replace("{w}", str(w))


def _run(argv: list, w: Path, env: dict, debug: bool = False) -> subprocess.CompletedProcess:
    args = [_expand(a, w) if isinstance(a, str) else a.replace(b"{w}", str(w).encode()) for a in argv]
    cmd = [EXE, *(["--debug"] if debug else []), *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **{k: _expand(v, w) for k, v in env.items()}}
    out = subprocess.run(cmd, capture_output=True, cwd=w, env=full_env, timeout=300)
    return subprocess.CompletedProcess(cmd, out.returncode, out.stdout.decode(errors="replace"),
                                       out.stderr.decode(errors="replace"))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Every case run once (three at a time), plus one `--debug` run; {name: CompletedProcess}, and the folder."""
    w = tmp_path_factory.mktemp("bad")
    _scenes(w)
    _stores(w)
    _weights(w)
    _configs(w)
    jobs = {c.name: (list(c.argv), c.env, False) for c in CASES}
    jobs["--debug"] = (list(CASES[0].argv), {}, True)
    with ThreadPoolExecutor(3) as pool:
        futures = {name: pool.submit(_run, argv, w, env, debug) for name, (argv, env, debug) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}, w


def error_line(res: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("worldsim: error:")]
    return lines[-1] if lines else ""


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_clear_line(results, case):
    runs, w = results
    res = runs[case.name]
    line = error_line(res)
    assert res.returncode != 0, f"{case.name}: exit 0\n{res.stdout}\n{res.stderr}"
    assert "Traceback" not in res.stderr, res.stderr
    assert line, f"no `worldsim: error:` line:\n{res.stderr}"
    source, field_ = _expand(case.source, w), case.field
    # the line reads `worldsim: error: SOURCE: FIELD: message`: file first, then the field, then what is wrong
    assert line.startswith(f"worldsim: error: {source}: {field_}: "), f"expected {source}: {field_}: in\n{line}"
    assert case.says in line, line


def test_debug_prints_the_traceback(results):
    runs, _ = results
    res = runs["--debug"]
    assert res.returncode == 2 and "Traceback (most recent call last)" in res.stderr
    assert error_line(res)  # and still the one-line summary at the end


def test_the_catalogue_is_broad():
    assert len(CASES) >= 25 and len({c.name for c in CASES}) == len(CASES)
    assert {c.kind for c in CASES} >= {"scene", "spec", "store", "config", "weights", "action", "prompt", "cli"}


# --- docs/errors.md ------------------------------------------------------------------------------------------------


def render_doc(runs: dict, w: Path) -> str:
    head = (DOC.read_text().split("<!-- catalogue -->")[0] if DOC.exists() else "# Errors\n\n") + "<!-- catalogue -->\n"
    rows = ["| # | kind | bad input | command | error line |", "|---|---|---|---|---|"]
    for i, c in enumerate(CASES, 1):
        argv = [(a if isinstance(a, str) else a.decode(errors="backslashreplace")).replace("{w}/", "")
                .replace(str(DEBUG_FIT), "configs/train/debug.yaml") for a in c.argv]
        cmd = shlex.join(["worldsim", *argv])
        msg = _doc_message(error_line(runs[c.name]), w)
        rows.append(f"| {i} | {c.kind} | {c.what} | `{_cell(cmd)}` | `{_cell(msg)}` |")
    return head + "\n".join(rows) + "\n"


def _doc_message(line: str, w: Path) -> str:
    msg = line.replace(str(w) + "/", "").replace(str(w), ".")
    return msg if len(msg) <= 240 else msg[:237] + "..."  # the prompt errors list the scene's whole vocabulary


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("`", "'")


def test_docs_list_every_case(results):
    runs, w = results
    text = render_doc(runs, w)
    if os.environ.get("WORLDSIM_WRITE_ERRORS_DOC"):
        DOC.write_text(text)
    have = DOC.read_text()
    for i, c in enumerate(CASES, 1):
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| {i} | ")), "")
        assert row in have, (f"docs/errors.md lacks or has an old row for {c.name}; regenerate with "
                             f"WORLDSIM_WRITE_ERRORS_DOC=1 pytest tests/test_bad_inputs.py\n{row}")
    assert len(re.findall(r"^\| \d+ \|", have, re.M)) == len(CASES), "docs/errors.md lists cases no longer tested"

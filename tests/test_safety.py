"""Nothing a user did not make is ever unpickled: a scan of the package's source (and the notebooks' code cells) for
unsafe loaders. Paths from configs cannot make a run write outside its run folder (docs/errors.md, issue 12)."""

from __future__ import annotations

import json
import re

import pytest

from conftest import ROOT

UNSAFE = {
    r"\bpickle\.loads?\(": "pickle.load",
    r"\bcloudpickle\.loads?\(": "cloudpickle.load",
    r"\bdill\.loads?\(": "dill.load",
    r"\byaml\.load\((?![^)]*SafeLoader)": "yaml.load without SafeLoader",
    r"\byaml\.unsafe_load\(": "yaml.unsafe_load",
    r"\bnp\.load\([^)]*allow_pickle\s*=\s*True": "np.load(allow_pickle=True)",
    r"\btorch\.load\((?![^)]*weights_only\s*=\s*True)": "torch.load without weights_only=True",
    r"(?<![.\w])eval\(": "eval of a string",
    r"(?<![.\w])exec\(": "exec of a string",
    r"\bpickle\.Unpickler\(": "pickle.Unpickler",
    r"\byaml\.full_load\(": "yaml.full_load",
    r"\byaml\.load_all\((?![^)]*SafeLoader)": "yaml.load_all without SafeLoader",
    r"\bjoblib\.load\(": "joblib.load",
    r"\bmarshal\.loads?\(": "marshal.load",
    r"\bshelve\.open\(": "shelve.open",
    r"\btorch\.jit\.load\(": "torch.jit.load",
}


def _sources():
    """(name, code) of every package module and every notebook code cell."""
    for path in sorted((ROOT / "worldsim").rglob("*.py")):
        yield str(path.relative_to(ROOT)), path.read_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for i, cell in enumerate(cells):
            if cell["cell_type"] == "code":
                yield f"{path.relative_to(ROOT)} cell {i}", "".join(cell["source"])


def test_no_unsafe_loaders_in_the_package():
    hits = []
    names = []
    for name, text in _sources():
        names.append(name)
        for pattern, what in UNSAFE.items():
            for m in re.finditer(pattern, text):
                line = text.count("\n", 0, m.start()) + 1
                hits.append(f"{name}:{line}: {what}")
    assert not hits, "unsafe loading:\n" + "\n".join(hits)
    assert len(names) > 50  # the scan saw the package (and the notebooks, once there are any)


def test_the_scan_catches_what_it_should(tmp_path):
    """The patterns are not vacuous: each flags a line that uses the unsafe call and spares the safe form."""
    bad = ["pickle.load(f)", "yaml.load(s)", "torch.load(p)", "np.load(p, allow_pickle=True)", "exec(code)",
           "yaml.full_load(s)", "joblib.load(p)", "pickle.Unpickler(f)", "torch.jit.load(p)"]
    bad.append("eval(text)")
    good = ["yaml.load(s, Loader=yaml.SafeLoader)", "torch.load(p, weights_only=True)", "yaml.safe_load(s)",
            "model.eval()"]
    flagged = lambda line: any(re.search(p, line) for p in UNSAFE)  # noqa: E731
    assert all(flagged(b) for b in bad) and not any(flagged(g) for g in good)


# --- paths from configs stay inside the run folder ---------------------------------------------------------------


@pytest.mark.parametrize("trainer, field", [
    ({"default_root_dir": "runs/../../elsewhere"}, "trainer.default_root_dir"),
    ({"default_root_dir": "../runs/x"}, "trainer.default_root_dir"),
    ({"default_root_dir": "runs/x", "callbacks": [{"class_path": "ModelCheckpoint",
                                                   "init_args": {"dirpath": "/tmp/stolen"}}]},
     "trainer.callbacks[0].init_args.dirpath"),
    ({"default_root_dir": "runs/x", "callbacks": [{"init_args": {"dirpath": "ckpt/../../../up"}}]},
     "trainer.callbacks[0].init_args.dirpath"),
    ({"default_root_dir": "runs/x", "profiler": {"init_args": {"dirpath": "/var/tmp"}}},
     "trainer.profiler.init_args.dirpath"),
])
def test_config_paths_cannot_leave_the_run_folder(tmp_path, trainer, field):
    from worldsim.errors import ConfigError
    from worldsim.training.cli import check_run_paths

    config = tmp_path / "run.yaml"
    config.write_text("trainer:\n  default_root_dir: x\n")
    with pytest.raises(ConfigError) as e:
        check_run_paths(trainer, ["--config", str(config)])
    assert e.value.field == field and e.value.source == str(config)


def test_config_paths_inside_the_run_folder_are_fine(tmp_path):
    from worldsim.training.cli import check_run_paths

    root = str(tmp_path / "run")
    inside = {"default_root_dir": root, "callbacks": [{"init_args": {"dirpath": f"{root}/extra"}},
                                                      {"init_args": {"dirpath": "relative/inside"}}]}
    assert check_run_paths(inside, []) is None  # raises ConfigError when a path leaves the run folder
    assert check_run_paths({"default_root_dir": "runs/plain"}, []) is None

"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel (the venv's python3 kernel, through
nbclient) at small size, and fails the suite on any error; committed notebooks hold no outputs.

The small-size switch (WORLDSIM_NOTEBOOK_SMALL=1) shrinks sizes and steps but skips no cell. Tiny models trained by
a notebook are cached in one temporary folder for the session (WORLDSIM_NOTEBOOK_CACHE), so a second notebook that
needs the same scene reuses the first one's run, as it would on a reader's machine."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["01_quickstart", "02_rollout_explorer", "03_object_permanence", "04_physics_classroom",
            "05_generation_modes", "06_scaling"]


@pytest.fixture(scope="module")
def kernel_env(tmp_path_factory):
    """Small size, one shared model cache, and the venv first on PATH so the kernel is this interpreter."""
    cache = tmp_path_factory.mktemp("nbcache")
    saved = {k: os.environ.get(k) for k in ("WORLDSIM_NOTEBOOK_SMALL", "WORLDSIM_NOTEBOOK_CACHE", "PATH",
                                            "OMP_NUM_THREADS")}
    os.environ.update(WORLDSIM_NOTEBOOK_SMALL="1", WORLDSIM_NOTEBOOK_CACHE=str(cache), OMP_NUM_THREADS="1",
                      PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    yield cache
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _execute(book: nbformat.NotebookNode, cwd: Path, timeout: int = 300) -> nbformat.NotebookNode:
    client = NotebookClient(book, kernel_name="python3", timeout=timeout, allow_errors=False,
                            resources={"metadata": {"path": str(cwd)}})
    return client.execute()


def test_the_six_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_no_outputs(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: strip outputs before committing"


def test_kernel_is_this_venv(kernel_env, tmp_path):
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import sys; print(sys.executable)")])
    out = _execute(book, tmp_path).cells[0].outputs[0]["text"].strip()
    assert Path(out).resolve() == Path(sys.executable).resolve()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, kernel_env, record_property):
    book = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    done = _execute(book, path.parent)  # raises CellExecutionError on any error, naming the cell
    seconds = time.perf_counter() - start
    record_property("seconds", round(seconds, 1))
    print(f"{path.stem}: {seconds:.1f} s")
    code = [c for c in done.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "a cell did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors
    # the source line says which model the notebook used, when it uses one
    text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
    if "world_model(" in "".join(c.source for c in code):
        assert "shipped model" in text or "trained here" in text

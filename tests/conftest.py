"""Shared fixtures. Tests run on 2 shared cores: keep torch to one thread so parallel work stays predictable."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run_cli():
    """Run the real `worldsim` console command in a subprocess; returns CompletedProcess with text output."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
        exe = Path(sys.executable).with_name("worldsim")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.run([str(exe), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout, env=env)

    return run


def doc_files(doc: Path, folder: Path) -> list[Path]:
    """Write every fenced block marked ```lang file=NAME in a Markdown doc into `folder`, literally."""
    out = []
    for name, body in re.findall(r"```\w+ file=(\S+)\n(.*?)```", doc.read_text(), re.S):
        path = folder / name
        path.write_text(body)
        out.append(path)
    return out


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Every test module runs torch on one thread: tiny models are fastest so, and tests do not fight over the two
    cores (subprocesses get OMP_NUM_THREADS where they need it)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def edit_text(path: Path, old: str, new: str) -> None:
    """Replace `old` by `new` in a file, failing loudly if `old` is not there (so a stale fixture cannot pass)."""
    text = path.read_text()
    assert old in text, f"fixture text {old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture
def scene_copy(tmp_path):
    """`scene_copy(name)`: a writable copy of a built-in scene folder, to break in different ways."""
    import shutil

    from worldsim.sim.registry import builtin_dir

    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(builtin_dir() / name, dst)
        return dst

    return copy

"""The package installs as a real wheel: the scene library ships inside it and every subpackage is listed."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import zipfile

from conftest import ROOT


def test_every_subpackage_is_listed():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "worldsim").rglob("__init__.py")}
    assert found | {"worldsim._envs"} == listed


def test_non_editable_wheel_finds_the_scenes(tmp_path):
    """Build the wheel, install it into a bare folder, import worldsim from there and load every scene."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "dist").glob("worldsim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "worldsim/_envs/bounce/spec.yaml" in names and "worldsim/_envs/bounce/bounce.xml" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import worldsim, worldsim.sim.registry as r; from worldsim.sim.registry import get_scene; "
            "print(r.builtin_dir()); print(sorted(get_scene(n).spec.name for n in worldsim.scene_names()))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(target)})
    builtin, scenes = out.stdout.strip().splitlines()
    assert builtin.startswith(str(target))
    assert "bounce" in scenes

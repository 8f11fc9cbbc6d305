"""Trained world models shipped inside the package (safetensors + metadata, fp16), one per scene, so notebooks and
`worldsim demo` start instantly and offline: `worldsim.pretrained.load("bounce")`.

Each file here was written by `worldsim fit` with the config named in its metadata (`training.config`) and
exported at fp16; `docs/results.md` says how each was trained and how well it does."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from worldsim.errors import WeightsError


def _dir() -> Path:
    return Path(str(resources.files("worldsim.pretrained")))


def available() -> list[str]:
    """Scenes with shipped weights."""
    return sorted(p.stem for p in _dir().glob("*.safetensors"))


def path(scene: str) -> Path:
    """The shipped weights file of `scene`; a clear error if none is shipped."""
    p = _dir() / f"{scene}.safetensors"
    if not p.is_file():
        raise WeightsError(f"no shipped weights for scene {scene!r}; shipped: {available()}. Train your own with "
                           "`worldsim fit` (docs/training.md)", source=str(_dir()), field="scene")
    return p


def load(scene: str, device: str = "cpu"):
    """The shipped world model of `scene` as a `worldsim.rollout.WorldModel`."""
    from worldsim.rollout.model import WorldModel

    return WorldModel.load(path(scene), device=device)

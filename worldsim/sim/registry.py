"""The scene registry: built-in scenes shipped in `envs/` (inside the wheel as `worldsim._envs`) and scenes a user
registers from any folder. Each scene is also a gymnasium env id under the `worldsim/` namespace."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path

import gymnasium

from worldsim.errors import SceneError
from worldsim.sim.scene import Scene, load_scene

_SCENE_PATHS: dict[str, Path] = {}


def env_id(name: str) -> str:
    """`push` -> `worldsim/Push-v0`."""
    return "worldsim/" + "".join(part.capitalize() for part in name.split("_")) + "-v0"


def builtin_dir() -> Path:
    return Path(str(resources.files("worldsim._envs")))


def _register_gym(name: str) -> None:
    eid = env_id(name)
    if eid not in gymnasium.registry:
        gymnasium.register(id=eid, entry_point="worldsim.sim.scene_env:SceneEnv", kwargs={"scene": name})


def register_scene(path: str | Path) -> str:
    """Register a scene from a folder (holding `spec.yaml`) or a spec file; returns its name.

    The scene is validated fully (MJCF compiled, names resolved) before it joins the registry."""
    scene = load_scene(path)
    name = scene.spec.name
    if name in _SCENE_PATHS and _SCENE_PATHS[name] != scene.spec.source:
        raise SceneError(f"a different scene named {name!r} is already registered from {_SCENE_PATHS[name]}",
                         source=scene.spec.source, field="name")
    _SCENE_PATHS[name] = scene.spec.source
    _register_gym(name)
    return name


def scene_names() -> list[str]:
    return sorted(_SCENE_PATHS)


@cache
def _load(path: Path) -> Scene:
    return load_scene(path)


def get_scene(name: str) -> Scene:
    """The loaded scene for a registered name (loaded once per process)."""
    if name not in _SCENE_PATHS:
        raise SceneError(f"unknown scene {name!r}; registered scenes: {scene_names()}", field="scene")
    return _load(_SCENE_PATHS[name])


def make(scene: str, **kwargs) -> gymnasium.Env:
    """Make the env of a registered scene name, or of any gymnasium env id (e.g. `Reacher-v5`) wrapped so that it
    is used like a scene: frames as observations, `resolution=`, the `info` keys that make sense
    (worldsim/sim/gym_adapter.py)."""
    if scene in _SCENE_PATHS:
        from worldsim.sim.scene_env import SceneEnv

        return SceneEnv(scene, **kwargs)
    if scene in gymnasium.registry:
        from worldsim.sim.gym_adapter import GymSceneAdapter

        return GymSceneAdapter(scene, **kwargs)
    raise SceneError(f"unknown scene or env id {scene!r}; worldsim scenes: {scene_names()}", field="scene")


def _register_builtins() -> None:
    for spec in sorted(builtin_dir().glob("*/spec.yaml")):
        # Built-ins are registered by folder name without parsing, so `import worldsim` stays fast;
        # a test checks each folder name equals its spec's `name`.
        _SCENE_PATHS[spec.parent.name] = spec
        _register_gym(spec.parent.name)


_register_builtins()

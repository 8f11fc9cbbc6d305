"""worldsim: a video diffusion transformer as a learned physics simulator, checked against MuJoCo.

The one import-time setting in worldsim: MuJoCo renders headless through EGL unless the user chose a
backend. It must be set before `mujoco` is first imported, so it lives here, at the package root.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from worldsim.errors import WorldsimError  # noqa: E402
from worldsim.sim.registry import make, register_scene, scene_names  # noqa: E402

__version__ = "0.1.0"
__all__ = ["WorldsimError", "__version__", "load", "make", "register_scene", "scene_names"]


def load(scene: str, device: str = "cpu"):
    """The shipped world model of `scene` (`worldsim.pretrained`), offline: `worldsim.load("bounce")`."""
    from worldsim import pretrained

    return pretrained.load(scene, device)

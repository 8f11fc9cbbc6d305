"""The physics classroom: move a scene's sliders (speed, size, angle, and any conditioned quantity such as gravity
or mass), press "run", and see MuJoCo's answer and the world model's prediction side by side, their object
trajectories on one plot, and — plainly — whether the request left the training distribution.

MuJoCo simulates the whole clip from the requested parameters; the world model sees MuJoCo's first `context`
frames (and the conditioned parameters, when it was trained with them) and predicts the rest. A request outside
the training distribution is named in a red banner and the player gets a red border and label, because beyond the
training ranges the model's answer is an extrapolation nobody checked. (The frames themselves are left untouched so
the difference and the PSNR shown compare the model's pixels with MuJoCo's.)"""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from worldsim.rollout import RolloutConfig, WorldModel, rollout
from worldsim.rollout.starts import from_mujoco
from worldsim.sim.registry import get_scene
from worldsim.viz.plots import png, tracks, trajectories
from worldsim.viz.widgets import ComparisonPlayer, ParameterPanel

OOD_BORDER = "6px solid #dc0028"


class Classroom:
    """`Classroom(model, frames=32)`; display it, or set sliders and call `run()` from Python (module docstring)."""

    def __init__(self, model: WorldModel, *, seed: int = 0, frames: int = 32, resolution=None,
                 context: int | None = None, steps: int | None = None, min_size: int = 160):
        from worldsim.sim.scene_env import SceneEnv

        self.model, self.seed, self.min_size = model, seed, min_size
        sm = model.scene
        self.scene = get_scene(sm.name)
        self.resolution = model.resolution(resolution)
        self.context = int(context or max(1, sm.train_frames - 1))
        self.frames = max(int(frames), self.context + 1)  # at least one predicted frame after the context
        self.config = RolloutConfig(steps=steps)
        self.sim = SceneEnv(sm.name, resolution=self.resolution, camera=sm.cameras[0], frame_skip=sm.frame_skip,
                            visibility=False)
        self.panel = ParameterPanel(self.scene, self.scene.sample(np.random.default_rng(seed)))
        self.run_button = W.Button(description="run", button_style="primary")
        self.run_button.on_click(lambda _: self.run())
        self.banner = W.HTML()
        self.plot = W.Image(format="png", layout=W.Layout(width="420px"))
        self.box = W.VBox()
        self.widget = W.VBox([W.HBox([self.panel.widget, self.run_button]), self.banner, self.box, self.plot])
        self.run()

    def run(self) -> None:
        """Simulate the requested parameters in MuJoCo, predict the same clip with the model, show both."""
        params = self.panel.params
        start = from_mujoco(self.sim, self.seed, self.frames, params=params)
        self.truth = start.frames                                                          # (T, H, W, 3)
        model_params = start.params if self.model.net.cfg.param_dim else None
        pred = rollout(self.model, self.truth[None, :self.context], horizon=self.frames - self.context,
                       config=self.config, seed=self.seed, context_actions=start.actions[None, :self.context],
                       params=model_params)[0]
        self.prediction = np.concatenate([self.truth[:self.context], pred])
        self.outside = self.panel.outside
        label = "world model" + (" (outside training data!)" if self.outside else "")
        self.player = ComparisonPlayer(self.truth, self.prediction, labels=("MuJoCo", label), min_size=self.min_size,
                                       fps=self.model.scene.fps)
        self.player.image.layout.border = OOD_BORDER if self.outside else ""
        self.box.children = [self.player.widget]
        colours = np.array([o.colour for o in self.scene.spec.objects])
        self.paths = {"MuJoCo": tracks(self.truth, colours), "world model": tracks(self.prediction, colours)}
        self.figure = trajectories(self.paths, size=self.resolution, colours=colours,
                                   title="object centres (parsed from frames)")
        self.plot.value = png(self.figure)
        if self.outside:
            self.banner.value = ("<div style='background:#b00020;color:white;padding:6px;font-weight:bold'>"
                                 "⚠ OUTSIDE THE TRAINING DISTRIBUTION: " + ", ".join(self.outside) +
                                 " — the model never saw this; its answer is an extrapolation</div>")
        else:
            self.banner.value = ("<div style='background:#1b5e20;color:white;padding:6px'>inside the training "
                                 "distribution</div>")

    def close(self) -> None:
        self.sim.close()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

"""An interactive side-by-side rollout player: MuJoCo (a `SceneEnv`) and a world model (a `WorldModelEnv`) started from
the same state and driven by the same actions, with live error.

Controls: one slider per action dimension, a step button, a play/pause widget (its ticks step both envs), the
horizon (play stops there), the denoising steps and the classifier-free guidance scale (both apply from the next
reset, which restarts both envs from the same MuJoCo state of the chosen seed). `frame` is what is on screen:
MuJoCo | world model | |difference|; `errors` the PSNR of every generated frame so far. Nothing runs in a background
thread: the browser's Play widget sends ticks, and a test sends them by setting `play.value`."""

from __future__ import annotations

import ipywidgets as W
import numpy as np

from worldsim.rollout import RolloutConfig, WorldModel, WorldModelEnv
from worldsim.rollout.starts import from_mujoco
from worldsim.viz.widgets import ActionController, png_bytes, psnr, side_by_side


class RolloutExplorer:
    """`RolloutExplorer(model, seed=0)`; display it in a notebook, or drive it from Python (module docstring)."""

    def __init__(self, model: WorldModel, *, seed: int = 0, resolution=None, camera: str | None = None,
                 horizon: int = 50, steps: int | None = None, guidance: float = 1.0, context: int | None = None,
                 min_size: int = 160, fps: float | None = None):
        from worldsim.sim.scene_env import SceneEnv

        self.model, self.min_size = model, min_size
        sm = model.scene
        self.resolution = model.resolution(resolution)
        self.camera = camera or sm.cameras[0]
        self.context = int(context or max(1, sm.train_frames - 1))
        self.sim = SceneEnv(sm.name, resolution=self.resolution, camera=self.camera, frame_skip=sm.frame_skip,
                            visibility=False)
        self.wm = WorldModelEnv(model, resolution=self.resolution, camera=self.camera, max_frames=10**9)
        self.controller = ActionController(self.sim.action_space, on_step=self.step)
        self.seed = W.BoundedIntText(value=seed, min=0, max=2**31 - 1, description="seed")
        self.horizon = W.IntSlider(value=horizon, min=1, max=max(500, horizon), description="horizon")
        self.steps = W.IntSlider(value=model.steps if steps is None else steps, min=1, max=16,
                                 description="denoise steps")
        self.guidance = W.FloatSlider(value=guidance, min=0.0, max=5.0, step=0.1, description="guidance")
        self.reset_button = W.Button(description="reset")
        self.reset_button.on_click(lambda _: self.reset())
        interval = int(1000 / (fps or sm.fps))
        self.play = W.Play(value=0, min=0, max=10**6, interval=interval, description="play")
        self.play.observe(self._tick, names="value")
        self.image = W.Image(format="png")
        self.label = W.HTML()
        self.widget = W.VBox([
            W.HTML(f"<b>MuJoCo</b> | <b>world model</b> ({sm.name}) | |difference|"), self.image, self.label,
            W.HBox([self.play, self.controller.step_button, self.reset_button, self.seed]),
            *self.controller.sliders, W.HBox([self.horizon, self.steps, self.guidance])])
        self.reset()

    # --- state ---------------------------------------------------------------------------------------------------

    @property
    def config(self) -> RolloutConfig:
        """The sampler settings the controls ask for (guidance on the action group of actuated scenes, else text)."""
        group = "actions" if self.model.scene.action_dim else "text"
        g = float(self.guidance.value)
        return RolloutConfig(steps=int(self.steps.value), guidance={} if g == 1.0 else {group: g})

    def reset(self) -> None:
        """Restart both envs from the same MuJoCo state: `context` frames of seed `seed` rendered by MuJoCo, given to
        the world model as its context; MuJoCo continues from the state it stopped in. The seed also fixes the model's
        sampling noise, so the same controls give the same frames."""
        seed = int(self.seed.value)
        start = from_mujoco(self.sim, seed, self.context)
        self.wm.core.config = self.config.check()
        self.wm.reset(seed=seed, options={"context": start.frames, "actions": start.actions, "params": start.params})
        self.real = self.pred = start.frames[-1]
        self.t = 0
        self.errors: list[float] = []
        self.applied = self.wm.core.config
        self._show()

    def step(self, action=None) -> bool:
        """One frame in both envs with the same action (the sliders' by default); False once the horizon is reached
        (and play is paused there)."""
        if self.t >= self.horizon.value:
            self.play.playing = False
            return False
        a = self.controller.value if action is None else np.asarray(action, np.float32)
        self.real = self.sim.step(a)[0]
        self.pred = self.wm.step(a)[0]
        self.t += 1
        self.errors.append(psnr(self.real, self.pred))
        self._show()
        return True

    def _tick(self, change) -> None:
        if change["new"] != change["old"]:
            self.controller.tick(force=True)

    @property
    def frame(self) -> np.ndarray:
        return self._frame

    def _show(self) -> None:
        self._frame = side_by_side(self.real, self.pred)
        self.image.value = png_bytes(self._frame, self.min_size)
        if self.errors:
            err = f"PSNR {self.errors[-1]:.1f} dB (mean {np.mean(self.errors):.1f} dB over {len(self.errors)} frames)"
        else:
            err = "both show the same MuJoCo context frame"
        cfg = self.applied
        self.label.value = (f"frame {self.t} / {self.horizon.value} - {err} - {cfg.steps} denoising steps, "
                            f"guidance {cfg.guidance or 'none'}")

    def close(self) -> None:
        self.sim.close()
        self.wm.close()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

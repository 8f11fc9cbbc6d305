"""ipywidgets for notebooks and scripts: a frame player, a side-by-side comparison player, an action controller
and a scene-parameter panel. Each keeps the state it shows as plain attributes (`frame`, `value`, `params`), so a
test can drive it in Python (move a slider, press a button) and check what it displays."""

from __future__ import annotations

import io
from collections.abc import Callable

import gymnasium
import ipywidgets as W
import numpy as np
from PIL import Image

from worldsim.sim.scene import Scene
from worldsim.viz.video import difference, upscale


def png_bytes(frame: np.ndarray, min_size: int = 256) -> bytes:
    """(H, W, 3) uint8 -> PNG bytes, upscaled with nearest neighbour so small simulations are visible."""
    buf = io.BytesIO()
    Image.fromarray(upscale(frame[None], min_size)[0]).save(buf, format="PNG")
    return buf.getvalue()


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 2) -> np.ndarray:
    """(…, H, W, 3) pairs -> (…, H, 2W + 2*gap + W, 3): left | right | absolute difference, white gaps between."""
    diff = difference(left, right)
    pad = np.full((*left.shape[:-2], gap, 3), 255, np.uint8)
    return np.concatenate([left, pad, right, pad, diff], axis=-2)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


class FramePlayer:
    """Plays a (T, H, W, 3) clip: a scrubber, play/pause, and the frame shown. `frame` is what is on screen."""

    def __init__(self, frames: np.ndarray, fps: float = 10.0, title: str = "", min_size: int = 256):
        self.frames = np.asarray(frames, dtype=np.uint8)
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3:
            raise ValueError(f"frames must be (T, H, W, 3), got {self.frames.shape}")
        self.min_size = min_size
        n = len(self.frames)
        self.image = W.Image(format="png")
        self.slider = W.IntSlider(0, 0, max(n - 1, 0), description="frame", continuous_update=True)
        self.play = W.Play(value=0, min=0, max=max(n - 1, 0), interval=int(1000 / fps), description="play")
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.label = W.HTML(title)
        self.slider.observe(lambda change: self._show(change["new"]), names="value")
        self.widget = W.VBox([self.label, self.image, W.HBox([self.play, self.slider])])
        self._show(0)

    @property
    def index(self) -> int:
        return self.slider.value

    @property
    def frame(self) -> np.ndarray:
        return self._frame

    def _render(self, t: int) -> np.ndarray:
        return self.frames[t]

    def _show(self, t: int) -> None:
        self._frame = self._render(t)
        self.image.value = png_bytes(self._frame, self.min_size)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class ComparisonPlayer(FramePlayer):
    """Two clips of the same length side by side with their absolute difference, and the frame's PSNR."""

    def __init__(self, left: np.ndarray, right: np.ndarray, fps: float = 10.0,
                 labels: tuple[str, str] = ("MuJoCo", "world model"), min_size: int = 192):
        left, right = np.asarray(left, np.uint8), np.asarray(right, np.uint8)
        if left.shape != right.shape:
            raise ValueError(f"clips must have the same shape, got {left.shape} and {right.shape}")
        self.left, self.right, self.labels = left, right, labels
        super().__init__(side_by_side(left, right), fps, min_size=min_size)

    def _show(self, t: int) -> None:
        super()._show(t)
        err = psnr(self.left[t], self.right[t])
        self.label.value = f"<b>{self.labels[0]}</b> | <b>{self.labels[1]}</b> | difference — frame {t}: PSNR {err:.1f} dB"


class ActionController:
    """One slider per dimension of a Box action space, and step / play / pause buttons calling back.

    `value` is the action the sliders set; `on_step(action)` is called once per press of step and on every tick
    while playing (the notebook or a test drives ticks with `tick()`, so nothing runs in a background thread)."""

    def __init__(self, space: gymnasium.spaces.Box, on_step: Callable[[np.ndarray], None] | None = None,
                 names: list[str] | None = None):
        if not isinstance(space, gymnasium.spaces.Box):
            raise ValueError(f"only Box action spaces have sliders, got {space}")
        self.space, self.on_step = space, on_step
        names = names or [f"a{i}" for i in range(space.shape[0])]
        self.sliders = [W.FloatSlider(value=float(np.clip(0.0, lo, hi)), min=float(lo), max=float(hi),
                                      step=float(hi - lo) / 100 or 0.01, description=n)
                        for n, lo, hi in zip(names, space.low, space.high)]
        self.step_button = W.Button(description="step")
        self.play_button = W.ToggleButton(description="play")
        self.step_button.on_click(lambda _: self.tick(force=True))
        self.steps_taken = 0
        self.widget = W.VBox([*self.sliders, W.HBox([self.step_button, self.play_button])])

    @property
    def value(self) -> np.ndarray:
        return np.array([s.value for s in self.sliders], dtype=self.space.dtype).reshape(self.space.shape)

    @property
    def playing(self) -> bool:
        return self.play_button.value

    def tick(self, force: bool = False) -> bool:
        """Take one step if playing (or forced by the step button); returns whether a step was taken."""
        if not (force or self.playing):
            return False
        self.steps_taken += 1
        if self.on_step is not None:
            self.on_step(self.value)
        return True

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)


class ParameterPanel:
    """Sliders for a scene's randomised and conditioned quantities (per object where they are per object), each
    spanning the in- and out-of-distribution ranges; says plainly when the request leaves the training distribution."""

    def __init__(self, scene: Scene, params: dict | None = None, obj: int = 0,
                 on_change: Callable[[dict], None] | None = None):
        self.scene, self.obj, self.on_change = scene, obj, on_change
        spec = scene.spec
        self.base = dict(params) if params is not None else scene.sample(np.random.default_rng(0))
        self.sliders: dict[str, W.FloatSlider] = {}
        for name, q in spec.quantities.items():
            if q.mode == "fixed" or q.kind == "count":
                continue
            if q.per_object and self.base[name][obj] is None:
                continue
            lo = min([q.id[0], *(r[0] for r in q.ood)])
            hi = max([q.id[1], *(r[1] for r in q.ood)])
            value = self.base[name][obj] if q.per_object else self.base[name]
            self.sliders[name] = W.FloatSlider(value=float(value), min=lo, max=hi, step=(hi - lo) / 200 or 0.01,
                                               description=name, continuous_update=False)
            self.sliders[name].observe(self._changed, names="value")
        self.status = W.HTML()
        self.widget = W.VBox([*self.sliders.values(), self.status])
        self._changed(None)

    @property
    def params(self) -> dict:
        out = {k: (list(v) if isinstance(v, list) else v) for k, v in self.base.items()}
        for name, s in self.sliders.items():
            if self.scene.spec.quantities[name].per_object:
                out[name][self.obj] = s.value
            else:
                out[name] = s.value
        return out

    @property
    def outside(self) -> list[str]:
        """The quantities set outside their in-distribution range."""
        q = self.scene.spec.quantities
        return [n for n, s in self.sliders.items() if not q[n].in_distribution(s.value)]

    def _changed(self, _change) -> None:
        out = self.outside
        if out:
            self.status.value = ("<span style='color:#b00020;font-weight:bold'>⚠ outside the training distribution: "
                                 + ", ".join(out) + "</span>")
        else:
            self.status.value = "<span style='color:#1b5e20'>inside the training distribution</span>"
        if self.on_change is not None and _change is not None:
            self.on_change(self.params)

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

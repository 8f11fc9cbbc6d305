"""Noise plans: every generation mode is a `(steps + 1, frames)` matrix of noise levels, row i the level of each
frame before step i (the last row where the samplers end). A column of zeros is a given, clean frame: the
samplers never change it. A notebook can plot a plan; a test can check it.

Modes (GUIDE.md, "one mechanism for every generation mode"): `t2v` (also action-to-video; `pyramid` staggers its
frames), `i2v`, `extend`
(forward or backward), `loop`, `connect`, `autoregressive` (one window of a rollout), `stairs` (a whole rollout,
one frame at a time), `edit` (SDEdit) and
`preview` (a fast plan for a low-resolution draft: the same model on a smaller grid, refined later by `edit`).
Modes whose context comes after the frames to make (extend backward, loop, connect) need bidirectional attention:
sample them with `extra_args={"causal": False}` on a model trained with `LossConfig.p_bidirectional > 0`.
"""

from __future__ import annotations

import torch

from worldsim.diffusion.edm import EDMConfig, karras_sigmas
from worldsim.errors import ConfigError

_DEFAULT = EDMConfig()


def _check(steps: int, frames: int, given: int = 0) -> None:
    if steps < 1:
        raise ConfigError(f"need at least one step, got {steps}", source="plans", field="steps")
    if frames < 1 or given >= frames:
        raise ConfigError(f"{frames} frames leave nothing to generate after {given} given", source="plans",
                          field="frames")


def _plan(steps: int, frames: int, given: list[int], cfg: EDMConfig, sigma_max: float | None = None) -> torch.Tensor:
    col = karras_sigmas(steps, cfg, sigma_max)                                       # (steps + 1,)
    plan = col[:, None].repeat(1, frames)                                            # (steps + 1, frames)
    plan[:, given] = 0.0
    return plan


def t2v(steps: int, frames: int, cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """Text- or action-to-video: every frame from full noise."""
    _check(steps, frames)
    return _plan(steps, frames, [], cfg)


def pyramid(steps: int, frames: int, stagger: int, cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """`t2v` with the frames staggered (Diffusion Forcing's pyramid schedule), (steps + (frames - 1) * stagger + 1,
    frames): frame j waits at full noise for j * stagger rows, then takes the `t2v` column's `steps` steps, so each
    frame settles after the one before it has partly settled, as training's per-frame levels showed it. stagger 0 is
    `t2v`; stagger = steps makes one frame at a time (`stairs` with no context)."""
    _check(steps, frames)
    if isinstance(stagger, bool) or not isinstance(stagger, int) or stagger < 0:
        raise ConfigError(f"must be an integer >= 0, got {stagger!r}", source="plans", field="stagger")
    col = karras_sigmas(steps, cfg)                                                  # (steps + 1,)
    plan = torch.zeros(steps + (frames - 1) * stagger + 1, frames)
    for j in range(frames):
        plan[: j * stagger, j] = col[0]
        plan[j * stagger : j * stagger + steps + 1, j] = col
    return plan


def i2v(steps: int, frames: int, cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """Image-to-video: frame 0 given."""
    _check(steps, frames, 1)
    return _plan(steps, frames, [0], cfg)


def extend(steps: int, frames: int, context: int, direction: str = "forward",
           cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """Extend a clip: forward, the first `context` frames given; backward, the last `context` frames given."""
    _check(steps, frames, context)
    if direction not in ("forward", "backward"):
        raise ConfigError(f"expected forward or backward, got {direction!r}", source="plans", field="direction")
    given = list(range(context)) if direction == "forward" else list(range(frames - context, frames))
    return _plan(steps, frames, given, cfg)


def connect(steps: int, frames: int, head: int, tail: int, cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """Connect two clips: the last `head` frames of the first and the first `tail` of the second given at the ends,
    the middle generated."""
    _check(steps, frames, head + tail)
    return _plan(steps, frames, list(range(head)) + list(range(frames - tail, frames)), cfg)


def loop(steps: int, frames: int, given_first: bool = False, cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """A seamless loop: frame `frames - 1` must equal frame 0. Sample it with `tie_frames(denoiser, [(0, -1)])`
    (both frames get the same denoised estimate, so the last step lands them on the same image). With
    `given_first`, frame 0 is a given image: put it at both ends and this is `connect(..., 1, 1)`."""
    if given_first:
        return connect(steps, frames, 1, 1, cfg)
    _check(steps, frames)
    return _plan(steps, frames, [], cfg)


def autoregressive(steps: int, frames: int, context: int, context_sigma: float = 0.0,
                   cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """One window of a rollout: `context` past frames held at `context_sigma` (0, or the small level they were
    trained with) and the new frames denoised. With a KV cache, pass only the new frames' columns."""
    _check(steps, frames, context)
    plan = _plan(steps, frames, [], cfg)
    plan[:, :context] = context_sigma
    return plan


def stairs(steps: int, frames: int, context: int, direction: str = "forward",
           cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """A whole frame-by-frame rollout as one plan, (made * steps + 1, frames): the frames after the `context` given
    ones (forward; before them, backward) are denoised one at a time, `steps` rows each, the rest waiting at full
    noise (Diffusion Forcing's fully autoregressive schedule; what `worldsim.rollout` runs with a KV cache)."""
    _check(steps, frames, context)
    if direction not in ("forward", "backward"):
        raise ConfigError(f"expected forward or backward, got {direction!r}", source="plans", field="direction")
    made = pyramid(steps, frames - context, steps, cfg)                             # (made * steps + 1, made)
    plan = torch.cat((torch.zeros(made.shape[0], context), made), 1)                 # the context columns at 0
    return plan if direction == "forward" else plan.flip(1)


def edit(steps: int, frames: int, sigma_start: float = 2.0, context: int = 0,
         cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """SDEdit (Meng et al. 2022): noise a real clip to `sigma_start` (lower keeps more of it) and denoise under new
    conditioning; the first `context` frames stay as given."""
    _check(steps, frames, context)
    if not sigma_start > 0:
        raise ConfigError(f"must be > 0, got {sigma_start}", source="plans", field="sigma_start")
    return _plan(steps, frames, list(range(context)), cfg, sigma_max=sigma_start)


def preview(steps: int, frames: int, cfg: EDMConfig = _DEFAULT) -> torch.Tensor:
    """A low-resolution draft: the `t2v` plan, meant for few steps on a smaller grid (Sora: prototype at low
    resolution, render at full size); upsample the draft and refine it with `edit`."""
    return t2v(steps, frames, cfg)


def initial(x: torch.Tensor, plan: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """The sampler's start: known frames x (B, T, C, H, W) (zeros where unknown) plus noise at the plan's first
    row. Columns at level 0 start exactly as given."""
    noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
    return x + plan[0].to(x)[None, :, None, None, None] * noise


def check(plan: torch.Tensor, frames: int) -> None:
    """Raise a `ConfigError` unless `plan` is (steps + 1, frames), finite, >= 0 and non-increasing in each column."""
    if plan.ndim != 2 or plan.shape[1] != frames or plan.shape[0] < 2:
        raise ConfigError(f"expected a (steps + 1, {frames}) plan, got {tuple(plan.shape)}", source="plan",
                          field="plan")
    if not torch.isfinite(plan).all() or (plan < 0).any():
        raise ConfigError("noise levels must be finite and >= 0", source="plan", field="plan")
    if (plan[1:] > plan[:-1]).any():
        raise ConfigError("noise levels may not rise from one step to the next", source="plan", field="plan")


MODES = ("t2v", "i2v", "extend", "connect", "loop", "autoregressive", "edit", "preview")

"""Autoregressive rollout: one new frame at a time after a sliding window of cached context frames.

The mechanism is the `autoregressive` noise plan (worldsim/diffusion/plans.py) restricted to the new frame's column:
the context lives in the network's frame-causal KV cache (`VideoDiT.new_cache` / `trim_cache`), so a step costs the
new frame's tokens only, and trimming the cache to `window` frames after every step keeps memory flat however long
the rollout runs. Per frame, `steps` Euler (or Heun) steps on the EDM schedule; ~3 suffice (DIAMOND samples its
Atari and CS:GO world models with about 3 steps per frame).

Context noise (GameNGen): `context_sigma > 0` shows the model its own past frames noised to that level (fresh noise
per frame), as in training (`LossConfig.context_sigma`), against drift in long rollouts. With `context_sigma == 0`
the frame is written to the cache *during its last denoising step* (input at sigma_min = 0.002, within the range
training showed context at), which saves one network call per frame; `fuse_write=False` writes the finished frame
in a separate clean pass instead, as Heun's sampler always does (its last level is visited twice).

Conventions: frames are uint8 `B T H W C` at the boundary; `actions[:, t]` passed to `step` is the action applied
after the last frame, leading into the new one (the training data's "action into frame t").
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from worldsim.diffusion import plans
from worldsim.diffusion.edm import per_frame
from worldsim.diffusion.sampling import SAMPLERS
from worldsim.errors import ConfigError
from worldsim.rollout.model import WorldModel, check_guidance, check_steps, to_frames, to_model


FUSE_BELOW = 0.01  # the last denoising input is "clean enough" to be cached below this level (sigma_min = 0.002)
# Samplers whose first network call at the last level is their last call. Heun's correction of the step before
# calls the network at that level first: a write there would let the final call attend to its own frame (E133).
FUSED_SAMPLERS = ("euler", "euler_a")


@dataclass(frozen=True)
class RolloutConfig:
    """How a rollout samples. `steps`: denoising steps per frame (None: the weights' own, `WorldModel.steps`, 3
    unless their file says). `window`: context frames kept in the KV cache (None: the longest training clip - 1, so
    context plus the new frame is one training clip)."""

    steps: int | None = None
    sampler: str = "euler"
    window: int | None = None
    context_sigma: float = 0.0
    guidance: dict[str, float] = field(default_factory=dict)
    fuse_write: bool = True

    def check(self) -> RolloutConfig:
        if self.steps is not None:
            check_steps(self.steps)
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; known: {list(SAMPLERS)}", field="sampler")
        if self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, int)
                                        or self.window < 1):
            raise ConfigError(f"window must be a positive number of frames, got {self.window!r}", field="window")
        if not (np.isfinite(self.context_sigma) and self.context_sigma >= 0):
            raise ConfigError(f"context_sigma must be finite and >= 0, got {self.context_sigma}", field="context_sigma")
        check_guidance(self.guidance)
        return self

    def resolved(self, model: WorldModel) -> RolloutConfig:
        """This config with the model's own steps where it leaves them to the model (what a rollout runs)."""
        return self if self.steps is not None else replace(self, steps=model.steps)


class Rollout:
    """A batch of B rollouts in progress: the KV cache of their context window and their fixed conditioning.

    `Rollout(model, context, ...)` encodes the context frames (B, k, H, W, 3); each `step(actions)` returns the next
    frame (B, H, W, 3) uint8. Deterministic given `seed`. `reversed=True` (weights trained on reversed clips):
    the context is played backward and so is the rollout, into the past. `common_noise=True`: every rollout of
    the batch draws the same noise (common random numbers: candidates that differ only in their actions are compared
    under one draw, so their differences are the actions' and not the sampler's luck; the planner's choice)."""

    def __init__(self, model: WorldModel, context, *, actions=None, cameras=None, params=None,
                 text: str | list[str] | None = None, config: RolloutConfig = RolloutConfig(), seed: int = 0,
                 resolution: tuple[int, int] | None = None, reversed: bool = False, common_noise: bool = False):
        self.model, self.config = model, config.check().resolved(model)
        net = model.net
        if not net.cfg.causal:
            raise ConfigError("cached rollout needs a frame-causal model (causal=True)", source=model.source,
                              field="model.config.causal")
        first = np.asarray(context)
        hw = resolution or (tuple(first.shape[-3:-1]) if first.ndim >= 4 else None)
        self.resolution = model.resolution(hw)
        ctx = model.check_frames(context, self.resolution)
        x = to_model(ctx).to(model.device)                                              # (B, k, C, H, W)
        if not torch.isfinite(x).all():
            raise ConfigError("context frames hold NaN or inf", source=model.source, field="context")
        self.batch, k = ctx.shape[:2]
        self.window = config.window or max(1, model.scene.train_frames - 1)
        # a name, or one per context frame (the last one carries on); later cuts: step(camera=...)
        self.camera = cameras if cameras is None or isinstance(cameras, str) else list(cameras)[-1]
        self.params, self.text, self.reversed = params, text, reversed
        # One noise stream per rollout of the batch: rollout i is the same whether it runs alone or in a batch
        # (with common noise, rollout 0's stream for all of them).
        self.generators = [torch.Generator().manual_seed(int(s)) for s in
                           np.random.SeedSequence(int(seed)).generate_state(1 if common_noise else self.batch,
                                                                            dtype=np.uint64) % 2**63]
        self.cache = net.new_cache()
        self.frames_done = k
        self.last = ctx[:, -1].copy()
        cond = model.cond(self.batch, k, actions=actions, cameras=self._cams(cameras, k), params=params, text=text,
                          reversed=reversed)
        self._write(x, cond)
        self._sigmas = plans.autoregressive(self.config.steps, 1, 0, cfg=model.edm)      # (steps + 1, 1)

    def _noise(self, shape) -> torch.Tensor:
        """(B, ...) standard normal noise, one draw per rollout's stream (broadcast when common)."""
        noise = torch.stack([torch.randn(shape[1:], generator=g) for g in self.generators])  # (B or 1, ...)
        return noise.expand(shape).to(self.model.device)

    def _cams(self, cameras, frames: int):
        if cameras is None or isinstance(cameras, str):
            return cameras
        return list(cameras)

    @torch.no_grad()
    def _write(self, x: torch.Tensor, cond) -> None:
        """Append finished frames x (B, t, C, H, W) to the cache (noised to context_sigma), then trim the window."""
        s = self.config.context_sigma
        sigma = torch.full(x.shape[:2], s, device=x.device)
        if s > 0:
            x = x + per_frame(sigma) * self._noise(x.shape)
        self.model.denoiser(x, sigma, cond, cache=self.cache, write_cache=True)
        self.model.net.trim_cache(self.cache, self.window)

    @torch.no_grad()
    def step(self, actions=None, camera: str | None = None) -> np.ndarray:
        """One new frame for every rollout of the batch: actions (B, A) lead into it; `camera` overrides the
        rollout's camera for this frame (multi-shot)."""
        model, cfg = self.model, self.config
        A = model.scene.action_dim
        acts = None
        if A or actions is not None:
            a = np.zeros((self.batch, A), np.float32) if actions is None else np.asarray(actions)
            if a.ndim == 1 and self.batch == 1:
                a = a[None]
            acts = model.check_actions(a[:, None] if a.ndim == 2 else a, self.batch, 1)
        cond = model.cond(self.batch, 1, actions=acts, cameras=camera or self.camera, params=self.params,
                          text=self.text, reversed=self.reversed)
        H, W = self.resolution
        x0 = self._sigmas[0, 0] * self._noise((self.batch, 1, 3, H, W))                # plans.initial, per rollout
        last_sigma = float(self._sigmas[-2, 0])
        fused = cfg.fuse_write and cfg.sampler in FUSED_SAMPLERS and cfg.context_sigma == 0 and last_sigma <= FUSE_BELOW
        cache = self.cache
        calls = {"n": 0}

        def denoiser(x, sigma, c, **kw):
            write = fused and not c.null and abs(float(sigma.flatten()[0]) - last_sigma) <= 1e-6 * last_sigma \
                and calls["n"] == 0
            if write:
                calls["n"] += 1
            return model.denoiser(x, sigma, c, cache=cache, write_cache=write, **kw)

        x = SAMPLERS[cfg.sampler](denoiser, x0, self._sigmas, cond, guidance=cfg.guidance or None, noise=self._noise)
        if fused:
            model.net.trim_cache(cache, self.window)
        else:
            self._write(x, cond)
        self.frames_done += 1
        frame = to_frames(x)[:, 0]
        self.last = frame
        return frame

    def run(self, actions=None, horizon: int | None = None, callback=None) -> np.ndarray:
        """`horizon` steps (or one per action of actions (B, H, A)) -> frames (B, H, H_px, W_px, 3)."""
        if actions is not None:
            actions = np.asarray(actions)
            horizon = actions.shape[1] if horizon is None else horizon
            if actions.ndim != 3 or actions.shape[1] != horizon:
                raise ConfigError(f"expected actions (B, {horizon}, A), got {actions.shape}", field="actions")
        if horizon is None or horizon < 1:
            raise ConfigError(f"need a horizon of at least one frame, got {horizon}", field="horizon")
        out = []
        for t in range(horizon):
            out.append(self.step(None if actions is None else actions[:, t]))
            if callback is not None:
                callback(t)
        return np.stack(out, 1)


def rollout(model: WorldModel, context, actions=None, horizon: int | None = None, *, config: RolloutConfig =
            RolloutConfig(), seed: int = 0, context_actions=None, cameras=None, params=None, text=None,
            progress: bool = False) -> np.ndarray:
    """Roll out B clips: context (B, k, H, W, 3) uint8, actions (B, H, A) leading into each new frame ->
    (B, H, H_px, W_px, 3) uint8 new frames."""
    from tqdm.auto import tqdm

    r = Rollout(model, context, actions=context_actions, cameras=cameras, params=params, text=text, config=config,
                seed=seed)
    n = horizon if actions is None else np.asarray(actions).shape[1]
    with tqdm(total=n, unit="frame", desc="rollout", disable=not progress) as bar:
        return r.run(actions, horizon, callback=lambda t: bar.update(1))

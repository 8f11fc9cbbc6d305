"""The world model as a `Predictor`: an adapter from `worldsim.rollout` (issue 5's autoregressive sampler) to the
evaluation's protocol, so `worldsim evaluate --model WEIGHTS` scores exported weights.

Its `denoising_loss` is the surprise of violation-of-expectation probes (`voe.DenoisingSurprise(pred.denoising_loss)`):
the clip is cut into consecutive windows of the model's longest training clip (`SURPRISE_WINDOW` frames when the
weights do not say), every frame of a window is noised to the same level, and the loss is EDM's weighted denoising
error (Karras et al. 2022), averaged over windows. The level is the draw's quantile u of the model's training noise
distribution, sigma = exp(P_mean + P_std * Phi^-1(u)), so common random numbers mean the same sigma and noise for
every clip of a set.

Action conventions differ only in indexing: here `actions[:, t]` moves frame t to t + 1 (k + H - 1 of them); the
rollout code takes the action *into* each frame, so the context gets (0, a_0, ..., a_{k-2}) (an episode's first frame
has no action into it: zeros, as the recorder stores) and the new frames get a_{k-1} .. a_{k+H-2}.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from worldsim.errors import ConfigError

SURPRISE_WINDOW = 8


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class WorldModelPredictor:
    """A loaded `worldsim.rollout.WorldModel` sampled autoregressively (`RolloutConfig`: steps, sampler, window)."""

    model: object  # worldsim.rollout.model.WorldModel
    config: object = None  # worldsim.rollout.autoregressive.RolloutConfig (None: its defaults)
    privileged: bool = field(default=False, init=False)

    @classmethod
    def load(cls, path: str | Path, config=None) -> WorldModelPredictor:
        from worldsim.rollout.model import WorldModel

        return cls(WorldModel.load(path), config)

    @property
    def name(self) -> str:
        return f"worldsim:{Path(self.model.source).name}"

    @property
    def scenes(self) -> tuple[str, ...]:
        return (self.model.scene.name,)

    @property
    def resolution(self) -> tuple[tuple[int, int], ...]:
        return tuple(self.model.scene.resolutions)  # every trained resolution is accepted

    def identity(self) -> dict:
        from dataclasses import asdict

        from worldsim.rollout.autoregressive import RolloutConfig

        meta = self.model.meta
        source = Path(self.model.source)
        return {"name": self.name, "kind": "world-model", "privileged": False, "source": str(source),
                "sha256": file_sha256(source) if source.is_file() else None, "model": meta.get("model", {}),
                "scene": meta.get("scene", {}), "training": meta.get("training", {}),
                "rollout": asdict((self.config or RolloutConfig()).resolved(self.model))}

    def predict(self, context, actions, horizon, *, conditioning, seed, state=None):
        from worldsim.rollout.autoregressive import Rollout, RolloutConfig, rollout

        b, k = context.shape[:2]
        a = np.asarray(actions, np.float32)
        use_actions = a.shape[-1] > 0
        ctx_actions = np.concatenate([np.zeros_like(a[:, :1]), a[:, :k - 1]], 1) if use_actions else None
        new_actions = a[:, k - 1:k - 1 + horizon] if use_actions else None
        params = list(conditioning.params) if conditioning is not None and conditioning.params else None
        camera = conditioning.camera if conditioning is not None else None
        cams = getattr(conditioning, "cameras", None)
        if cams is None:
            return rollout(self.model, context, new_actions, horizon, config=self.config or RolloutConfig(), seed=seed,
                           context_actions=ctx_actions, cameras=camera, params=params)
        # multi-shot: the context frames' cameras, then a per-step camera (`Rollout.step(camera=)`) at every cut
        r = Rollout(self.model, context, actions=ctx_actions, cameras=list(cams[:k]), params=params,
                    config=self.config or RolloutConfig(), seed=seed)
        return np.stack([r.step(None if new_actions is None else new_actions[:, t], camera=cams[k + t])
                         for t in range(horizon)], 1)

    @torch.no_grad()
    def denoising_loss(self, x: torch.Tensor, noise: torch.Tensor, level: torch.Tensor, conditioning) -> torch.Tensor:
        """Per-clip EDM denoising loss: x, noise (B, T, C, H, W) with x in [-1, 1]; level (B, T) quantiles in (0, 1)."""
        from worldsim.diffusion.edm import loss_weight, per_frame

        model = self.model
        edm = model.edm
        b, t = x.shape[:2]
        win = min(t, max(getattr(model.scene, "windows", (SURPRISE_WINDOW,))))
        sigma = (edm.p_mean + edm.p_std * torch.special.ndtri(level.double())).exp().float()  # (B, T)
        camera = conditioning.camera if conditioning is not None else None
        params = list(conditioning.params) if conditioning is not None and conditioning.params else None
        total = torch.zeros(b)
        starts = range(0, t - win + 1, win)
        for s0 in starts:
            xs, sg = x[:, s0:s0 + win], sigma[:, s0:s0 + win]
            cond = model.cond(b, win, cameras=camera, params=params)
            d = model.denoiser(xs + per_frame(sg) * noise[:, s0:s0 + win], sg, cond)
            total += (per_frame(loss_weight(sg, edm)) * (d - xs) ** 2).mean((1, 2, 3, 4))
        return total / len(starts)

    @torch.no_grad()
    def next_frame_loss(self, x: torch.Tensor, noise: torch.Tensor, level: torch.Tensor,
                        conditioning) -> torch.Tensor:
        """Per-clip teacher-forced EDM loss: x, noise (B, T, C, H, W) with x in [-1, 1]; level (B, T) quantiles.

        Each frame t >= 1 is noised to sigma(level[t]) and denoised after the clean frames before it, in the
        rollout's KV-cache window: the model's conditional p(frame t | its past), the quantity a rollout samples
        from. Summed over the frames where some clip of the call differs from the first at or before t: earlier
        frames see bit-equal inputs and, under common random numbers, score alike for every clip of a frame-causal
        network, so leaving them out changes every clip's surprise by the same constant."""
        from worldsim.diffusion.edm import loss_weight, per_frame

        model = self.model
        edm, net = model.edm, model.net
        b, t = x.shape[:2]
        if not net.cfg.causal or net.cfg.patch[0] != 1:
            raise ConfigError("a next-frame surprise needs a frame-causal model with one frame per patch",
                              source=model.source, field="model.config.causal")
        window = max(1, model.scene.train_frames - 1)
        same = (x == x[:1]).flatten(2).all(2).all(0)                                    # (T,)
        first = max(1, int(same.logical_not().nonzero()[0]) if not bool(same.all()) else t)
        sigma = (edm.p_mean + edm.p_std * torch.special.ndtri(level.double())).exp().float()  # (B, T)
        camera = conditioning.camera if conditioning is not None else None
        params = list(conditioning.params) if conditioning is not None and conditioning.params else None
        cond = model.cond(b, 1, cameras=camera, params=params)
        cache = net.new_cache()
        total = torch.zeros(b)
        for s in range(max(0, first - window), t):
            if s >= first:
                sg = sigma[:, s:s + 1]                                                      # (B, 1)
                xs = x[:, s:s + 1]                                                          # (B, 1, C, H, W)
                d = model.denoiser(xs + per_frame(sg) * noise[:, s:s + 1], sg, cond, cache=cache)
                total += (per_frame(loss_weight(sg, edm)) * (d - xs) ** 2).mean((1, 2, 3, 4))
            model.denoiser(x[:, s:s + 1], torch.zeros(b, 1), cond, cache=cache, write_cache=True)
            net.trim_cache(cache, window)
        return total

"""The world model behind the evaluation's `Predictor` protocol (worldsim/eval/predictor.py), so `worldsim evaluate
--model run/model.safetensors` scores it beside the baselines, and the re-emergence-vs-window measurement.

`predict(context (B, k, H, W, 3), actions (B, k + H - 1, A), horizon)`: the evaluation's `actions[:, t]` moves
frame t to t + 1, i.e. it is the model's action *into* frame t + 1; the context's first frame gets a zero action.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from worldsim.errors import ConfigError
from worldsim.rollout.autoregressive import Rollout, RolloutConfig
from worldsim.rollout.model import WorldModel
from worldsim.rollout.to_store import weights_sha


@dataclass
class WorldModelPredictor:
    model: WorldModel
    config: RolloutConfig = field(default_factory=RolloutConfig)
    name: str = "world-model"
    privileged: bool = False

    @property
    def scenes(self) -> tuple[str, ...]:
        return (self.model.scene.name,)

    @property
    def resolution(self) -> tuple[int, int] | None:
        res = self.model.scene.resolutions
        return res[0] if len(res) == 1 else None  # several trained sizes: `predict` checks each call

    def identity(self) -> dict:
        return {"name": self.name, "kind": "world-model", "privileged": False, "sha256": weights_sha(self.model.source),
                "config": {"weights": Path(self.model.source).name, "rollout": vars(self.config)},
                "scene": self.model.meta.get("scene", {}), "training": self.model.meta.get("training", {})}

    def predict(self, context, actions, horizon, *, conditioning=None, seed=0, state=None) -> np.ndarray:
        ctx = np.asarray(context)
        B, k = ctx.shape[:2]
        A = self.model.scene.action_dim
        acts = np.asarray(actions, np.float32)
        if acts.ndim != 3 or acts.shape[0] != B or acts.shape[2] != A or acts.shape[1] < k + horizon - 1:
            raise ConfigError(f"expected actions ({B}, {k + horizon - 1}, {A}), got {acts.shape}", field="actions")
        into = np.concatenate([np.zeros((B, 1, A), np.float32), acts], 1)                  # (B, k + H, A)
        params = None
        if self.model.net.cfg.param_dim and conditioning is not None:
            params = [dict(p) for p in conditioning.params]
        camera = conditioning.camera if conditioning is not None else None
        r = Rollout(self.model, ctx, actions=into[:, :k], cameras=camera, params=params, config=self.config,
                    seed=seed, resolution=tuple(ctx.shape[2:4]))
        return r.run(into[:, k:k + horizon])


def load_predictor(path: str | Path, config: RolloutConfig | None = None) -> WorldModelPredictor:
    """The evaluation's loader (`worldsim evaluate --model FILE`)."""
    return WorldModelPredictor(WorldModel.load(path), config or RolloutConfig())


def reemergence_vs_window(model: WorldModel, windows: list[int], *, episodes: int = 8, distribution: str = "id",
                          start: int = 14, context: int = 4, horizon: int = 36, seed: int = 0,
                          config: RolloutConfig = RolloutConfig(), resolution=None) -> dict[int, dict]:
    """How object permanence depends on the context window: for each window, roll the model out over the
    `occlusion` scene's occlusions (MuJoCo episodes from the evaluation's seed stream, `start` frames in) and score
    re-emergence with the evaluation's permanence probe (worldsim/eval/permanence.py). `distribution`
    `ood:occluder_width` hides the ball ~15-25 frames instead of ~4-5. Returns {window: {figure: mean}}."""
    from worldsim.eval.paired import fresh_episodes, rollout
    from worldsim.eval.permanence import permanence
    from worldsim.sim.registry import get_scene

    if model.scene.name != "occlusion":
        from worldsim.errors import WeightsError

        raise WeightsError(f"re-emergence is measured on the occlusion scene; these weights are for "
                           f"{model.scene.name!r}", source=model.source, field="scene.name")
    hw = model.resolution(resolution)
    eps = fresh_episodes("occlusion", episodes, context + horizon, distribution=distribution, seed=seed,
                         resolution=hw, start=start)
    spec = get_scene("occlusion").spec
    colours = np.array([o.colour for o in spec.objects])
    names = [o.name for o in spec.objects]
    out = {}
    for w in windows:
        pred = WorldModelPredictor(model, replace(config, window=int(w)))
        paired = rollout(pred, eps, context, horizon, seed=seed)
        figs = permanence(paired, colours, names)
        out[int(w)] = {k: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for k, v in figs.items()}
    return out

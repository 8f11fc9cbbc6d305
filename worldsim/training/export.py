"""Export a trained module's (EMA) weights to safetensors with everything a loader needs, and no Lightning."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import torch

from worldsim.training.module import WorldModel
from worldsim.weights import FORMAT_VERSION, save_weights


def git_commit() -> str | None:
    """The commit of the worldsim checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def export_meta(module: WorldModel, config: str | None = None, data: list[str] | None = None, steps: int = 0) -> dict:
    """The metadata stored with exported weights (format version, model and loss config, scene, training)."""
    hp = module.hparams
    return {
        "format_version": FORMAT_VERSION,
        "model": {"preset": hp.preset, "config": dataclasses.asdict(module.net.cfg)},
        "loss": dataclasses.asdict(module.loss_cfg),
        "scene": dict(module.scene),
        "training": {"steps": int(steps), "config": config, "git_commit": git_commit(), "data": list(data or [])},
    }


def export(module: WorldModel, path: str | Path, ema: dict[str, torch.Tensor] | None = None,
           dtype: torch.dtype | None = None, **meta_kwargs) -> Path:
    """Write the network's weights (the EMA average when given) to `path` as safetensors."""
    state = {k.removeprefix("net."): v for k, v in module.state_dict().items() if k.startswith("net.")}
    if ema is not None:
        for k, v in ema.items():
            if k.startswith("net."):
                state[k.removeprefix("net.")] = v
    return save_weights(path, state, export_meta(module, **meta_kwargs), dtype=dtype)

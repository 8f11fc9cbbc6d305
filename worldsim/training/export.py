"""Export a trained module's (EMA) weights to safetensors with everything a loader needs, and no Lightning."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import torch

from worldsim.models.load import save_model
from worldsim.training.module import WorldModel


def git_commit() -> str | None:
    """The commit of the worldsim checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def export(module: WorldModel, path: str | Path, ema: dict[str, torch.Tensor] | None = None,
           dtype: torch.dtype | None = None, config: str | None = None, data: list[str] | None = None,
           steps: int = 0) -> Path:
    """Write the network's weights (the EMA average when given) to `path` as safetensors."""
    state = {k.removeprefix("net."): v for k, v in module.state_dict().items() if k.startswith("net.")}
    if ema is not None:
        state.update({k.removeprefix("net."): v for k, v in ema.items() if k.startswith("net.")})
    training = {"steps": int(steps), "config": config, "git_commit": git_commit(), "data": list(data or [])}
    return save_model(path, module.net, module.scene, dataclasses.asdict(module.loss_cfg), training, state, dtype)

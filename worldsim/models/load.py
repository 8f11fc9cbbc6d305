"""Load exported weights into a `VideoDiT` without Lightning or training code (rollouts, evaluation, notebooks)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from worldsim.errors import WeightsError
from worldsim.models.config import DiTConfig, TextConfig
from worldsim.models.dit import VideoDiT
from worldsim.weights import FORMAT_VERSION, load_weights, save_weights


def weights_meta(net: VideoDiT, scene: dict[str, Any], loss: dict[str, Any], training: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """The metadata of exported weights: format version, model config, loss (EDM) config, the scene the model was
    trained for (name, resolution(s), frame_skip, fps, cameras, action_dim/low/high, param_names, windows), and the
    training provenance (steps, resolved config, git commit, data)."""
    return {"format_version": FORMAT_VERSION, "model": {"preset": net.name, "config": dataclasses.asdict(net.cfg)},
            "loss": loss, "scene": dict(scene), "training": dict(training or {})}


def save_model(path: str | Path, net: VideoDiT, scene: dict[str, Any], loss: dict[str, Any],
               training: dict[str, Any] | None = None, state: dict[str, torch.Tensor] | None = None,
               dtype: torch.dtype | None = None) -> Path:
    """Export `net` (or `state`, e.g. EMA weights, in its layout) with `weights_meta` to a safetensors file."""
    tensors = state if state is not None else net.state_dict()
    return save_weights(path, tensors, weights_meta(net, scene, loss, training), dtype=dtype)


def config_from_meta(meta: dict[str, Any], path: str | Path) -> DiTConfig:
    try:
        cfg = dict(meta["model"]["config"])
        text = cfg.pop("text", None)
        known = {f.name for f in dataclasses.fields(DiTConfig)}
        bad = sorted(set(cfg) - known)
        if bad:
            raise WeightsError(f"unknown model config field {bad[0]!r}", source=path, field=f"model.config.{bad[0]}")
        return DiTConfig(**cfg, text=TextConfig(**text) if text else None)
    except (KeyError, TypeError) as e:
        raise WeightsError(f"model config missing or malformed: {e}", source=path, field="model.config") from None


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VideoDiT, dict[str, Any]]:
    """The network in eval mode and the weights' metadata (scene, loss config, training provenance)."""
    tensors, meta = load_weights(path)
    net = VideoDiT(config_from_meta(meta, path), name=str(meta["model"].get("preset", "custom")))
    missing, unexpected = net.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise WeightsError(f"weights do not fit the model config: {what}", source=path, field="tensors")
    return net.to(device).eval(), meta

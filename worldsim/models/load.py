"""Save and load a `VideoDiT` as worldsim weights (`worldsim.weights`: safetensors, digest-checked, no pickle):
the tensors plus a JSON header holding the model config, so `load_model(path)` rebuilds the exact network."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from worldsim.errors import ConfigError, WeightsError
from worldsim.models.config import DiTConfig
from worldsim.models.dit import VideoDiT
from worldsim.weights import load_weights, save_weights


def config_to_dict(cfg: DiTConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_from_dict(d: dict[str, Any], source: str | Path = "<memory>") -> DiTConfig:
    """A `DiTConfig` from its dict; unknown or invalid fields are a `WeightsError` naming the field."""
    known = {f.name for f in dataclasses.fields(DiTConfig)}
    bad = sorted(set(d) - known)
    if bad:
        raise WeightsError(f"unknown model config field {bad[0]!r} (weights from a newer worldsim?)", source=source,
                           field=f"model.config.{bad[0]}")
    try:
        return DiTConfig(**d)
    except (ConfigError, TypeError) as e:
        raise WeightsError(f"invalid model config: {e}", source=source, field="model.config") from None


def save_model(path: str | Path, net: VideoDiT, scene: dict[str, Any] | None = None, loss: dict[str, Any] | None = None,
               training: dict[str, Any] | None = None, state: dict[str, torch.Tensor] | None = None,
               dtype: torch.dtype | None = None, sampler: dict[str, Any] | None = None) -> Path:
    """Write `state` (default: the network's own weights) with the config and what the model was trained for;
    `sampler`: how it samples best by default (`{"steps": 2}`: chosen by evaluation after training, E57)."""
    meta = {"model": {"preset": net.name, "config": config_to_dict(net.cfg)}, "scene": scene or {},
            "loss": loss or {}, "training": training or {}}
    if sampler:
        meta["sampler"] = dict(sampler)
    return save_weights(path, dict(state if state is not None else net.state_dict()), meta, dtype)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VideoDiT, dict[str, Any]]:
    """(network in eval mode on `device`, metadata) from a file written by `save_model`."""
    tensors, meta = load_weights(path)
    model = meta.get("model") or {}
    if "config" not in model:
        raise WeightsError("the weights hold no model config", source=path, field="model.config")
    net = VideoDiT(config_from_dict(model["config"], path), name=str(model.get("preset", "custom")))
    expected = net.state_dict()
    missing, extra = sorted(set(expected) - set(tensors)), sorted(set(tensors) - set(expected))
    if missing or extra:
        which = f"missing {missing[0]!r}" if missing else f"unexpected {extra[0]!r}"
        raise WeightsError(f"weights do not fit the network they describe ({which})", source=path, field="tensors")
    wrong = [k for k, v in tensors.items() if v.shape != expected[k].shape]
    if wrong:
        raise WeightsError(f"{wrong[0]!r} has shape {tuple(tensors[wrong[0]].shape)}, the network wants "
                           f"{tuple(expected[wrong[0]].shape)}", source=path, field="tensors")
    net.load_state_dict(tensors, strict=True)
    return net.to(device).eval(), meta

"""Shared by the rollout tests (not collected): small debug world models exported to real weights files, with
weights perturbed away from DiT's zero init so that outputs depend on inputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from worldsim.diffusion.loss import LossConfig
from worldsim.models import build_model
from worldsim.models.load import save_model
from worldsim.sim.conditioned import param_names
from worldsim.sim.registry import get_scene


def scene_meta(scene: str, resolutions=((16, 16), (32, 32)), windows=(4,)) -> dict:
    spec = get_scene(scene).spec
    from worldsim.sim.scene_env import SceneEnv

    env = SceneEnv(scene, resolution=16, visibility=False)
    low, high = env.action_space.low.tolist(), env.action_space.high.tolist()
    fps = float(env.metadata["render_fps"])
    env.close()
    return {"name": scene, "resolution": [list(r) for r in resolutions], "frame_skip": spec.frame_skip, "fps": fps,
            "cameras": list(spec.cameras), "action_dim": len(low), "action_low": low, "action_high": high,
            "param_names": param_names(spec), "windows": list(windows)}


def debug_weights(path: Path, scene: str = "push", seed: int = 0, **overrides) -> Path:
    meta = scene_meta(scene)
    torch.manual_seed(seed)
    net = build_model("debug", action_dim=meta["action_dim"], camera_classes=len(meta["cameras"]),
                      param_dim=len(meta["param_names"]), **overrides)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return save_model(path, net, meta, dataclasses.asdict(LossConfig()))



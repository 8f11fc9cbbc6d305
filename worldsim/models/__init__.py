"""The video DiT (knows nothing of diffusion): `build_model(preset, **overrides)`, then
`model(x, noise_per_frame, cond) -> prediction`, with a `KVCache` for one-frame-at-a-time rollout."""

from worldsim.models.cache import KVCache
from worldsim.models.conditioning import GROUPS, Cond
from worldsim.models.config import DiTConfig, TextConfig
from worldsim.models.dit import VideoDiT
from worldsim.models.presets import PRESETS, build_model, get_preset, model_config, preset_names
from worldsim.models.text import tokenize

__all__ = ["GROUPS", "PRESETS", "Cond", "DiTConfig", "KVCache", "TextConfig", "VideoDiT", "build_model",
           "get_preset", "model_config", "preset_names", "tokenize"]

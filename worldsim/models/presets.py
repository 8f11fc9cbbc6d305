"""Named model sizes, like DiT's `DiT_models`: `debug` for tests, `tiny` the CPU default, and `S`, `B`, `L` at the
widths and depths of DiT-S/B/L (Kang et al. 2024 trained those on 128 px physics videos) for GPUs."""

from __future__ import annotations

import dataclasses

from worldsim.errors import ConfigError
from worldsim.models.config import DiTConfig, TextConfig
from worldsim.models.dit import VideoDiT


@dataclasses.dataclass(frozen=True)
class Preset:
    config: DiTConfig
    size: tuple[int, int, int]  # (T, H, W) the preset is meant for: where params/FLOPs per frame are reported
    note: str


PRESETS: dict[str, Preset] = {
    "debug": Preset(DiTConfig(width=64, depth=2, heads=2, patch=(1, 4, 4),
                              text=TextConfig(width=32, depth=1, heads=2, max_len=64)),
                    (4, 16, 16), "tests: builds and steps in milliseconds"),
    "tiny": Preset(DiTConfig(width=256, depth=6, heads=4, patch=(1, 4, 4),
                             text=TextConfig(width=128, depth=2, heads=4, max_len=128)),
                   (8, 64, 64), "the CPU default: 64 px, 256 tokens per frame"),
    "S": Preset(DiTConfig(width=384, depth=12, heads=6, patch=(1, 8, 8)), (32, 128, 128), "DiT-S, 12x384"),
    "B": Preset(DiTConfig(width=768, depth=12, heads=12, patch=(1, 8, 8)), (32, 128, 128), "DiT-B, 12x768"),
    "L": Preset(DiTConfig(width=1024, depth=24, heads=16, patch=(1, 8, 8)), (32, 128, 128), "DiT-L, 24x1024"),
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}", source="models",
                          field="preset")
    return PRESETS[name]


def model_config(preset: str, **overrides) -> DiTConfig:
    """The preset's config with fields replaced (e.g. `action_dim=2`, `param_dim=1`)."""
    cfg = get_preset(preset).config
    known = {f.name for f in dataclasses.fields(DiTConfig)}
    bad = sorted(set(overrides) - known)
    if bad:
        raise ConfigError(f"unknown DiTConfig field {bad[0]!r}; fields: {', '.join(sorted(known))}",
                          source=f"preset {preset}", field=bad[0])
    return dataclasses.replace(cfg, **overrides)


def build_model(preset: str = "tiny", **overrides) -> VideoDiT:
    """A freshly initialised `VideoDiT` of the named size, with `overrides` applied to its config."""
    return VideoDiT(model_config(preset, **overrides), name=preset)

"""Splits and seeds: which distribution each split draws from, and every episode's seeds.

Episode content depends only on (seed, split, episode index): `episode_seeds` derives the env's reset seed, the
scene-quantity generator and the policy generator from `np.random.SeedSequence([seed, split_id, index])`, where
`split_id` is the crc32 of the split's name. Different splits therefore draw from disjoint seed streams, and no
test episode can equal a training episode. Nothing depends on the number of workers, their timing or the machine.

Held-out combinations (`holdout`): a per-object quantity (e.g. `radius`) has its in-distribution range cut into a
lower and an upper half; object i's held-out half is the upper one for even i and the lower one for odd i. In
train/val/test every object draws only from its other half; in the `heldout` split every active object draws
from its held-out half. Each value stays inside the id range, and each half is seen in training (on other
objects), but e.g. a big red ball or a small green one never is.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from worldsim.data.schema import DEFAULT_DISTRIBUTION
from worldsim.errors import ConfigError


def split_id(name: str) -> int:
    """A stable integer for a split name (crc32), mixed into every episode's seed."""
    return zlib.crc32(name.encode())


@dataclass(frozen=True)
class EpisodeSeeds:
    env: int  # passed to env.reset(seed=...)
    params: np.random.Generator  # draws scene quantities where the recorder draws them (held-out, explicit ranges)
    policy: np.random.Generator  # the action policy's randomness


def episode_seeds(seed: int, split: str, index: int) -> EpisodeSeeds:
    ss = np.random.SeedSequence([seed, split_id(split), index])
    env_ss, params_ss, policy_ss = ss.spawn(3)
    lo, hi = env_ss.generate_state(2, dtype=np.uint32)
    return EpisodeSeeds(int(lo) | (int(hi) << 32), np.random.default_rng(params_ss), np.random.default_rng(policy_ss))


def check_split_name(name: str) -> str:
    if not (isinstance(name, str) and name.isidentifier()):
        raise ConfigError(f"a split name must be an identifier (train, val, test, ood, heldout, ...), got {name!r}",
                          field="split")
    return name


def resolve_distribution(split: str, distribution: str | None) -> str:
    """The distribution a split draws from: the explicit one, else the split's default."""
    if distribution is not None:
        if not (distribution in ("id", "ood", "heldout") or distribution.startswith("ood:")):
            raise ConfigError(f"expected id, ood, ood:NAME or heldout, got {distribution!r}", field="distribution")
        return distribution
    if split not in DEFAULT_DISTRIBUTION:
        raise ConfigError(f"split {split!r} has no default distribution; set `distribution` "
                          f"(defaults exist for {sorted(DEFAULT_DISTRIBUTION)})", field="distribution")
    return DEFAULT_DISTRIBUTION[split]


def check_holdout(scene, quantity: str | None) -> dict | None:
    """Validate a held-out quantity against a scene; the store attribute describing the rule (or None)."""
    if quantity is None:
        return None
    if scene is None:
        raise ConfigError("held-out combinations need a worldsim scene (its spec's ranges)", field="holdout")
    q = scene.spec.quantities.get(quantity)
    if q is None or not q.per_object or q.mode == "fixed" or q.kind == "count":
        ok = sorted(n for n, v in scene.spec.quantities.items() if v.per_object and v.mode != "fixed")
        raise ConfigError(f"{quantity!r} is not a randomised per-object quantity of {scene.spec.name}; choose one of {ok}",
                          field="holdout")
    return {"quantity": quantity, "rule": "object i holds out the upper half of the id range if i is even, the lower half if odd"}


def _halves(lo: float, hi: float) -> tuple[tuple[float, float], tuple[float, float]]:
    mid = 0.5 * (lo + hi)
    return (lo, mid), (mid, hi)


def draw_params(scene, rng: np.random.Generator, distribution: str, holdout: dict | None,
                ranges: dict[str, list[float]]) -> dict | None:
    """Draw an episode's quantities where the env cannot (held-out halves, explicit ranges); None means the env
    draws them itself from `distribution` (id / ood / ood:NAME)."""
    if distribution != "heldout" and not ranges and not (holdout and distribution == "id"):
        return None
    base = "id" if distribution == "heldout" else distribution
    params = scene.sample(rng, base)
    if holdout is not None and distribution in ("id", "heldout"):
        name = holdout["quantity"]
        lo, hi = scene.spec.quantities[name].id
        lower, upper = _halves(lo, hi)
        for i in range(len(params[name])):
            held = upper if i % 2 == 0 else lower
            kept = lower if i % 2 == 0 else upper
            a, b = held if distribution == "heldout" else kept
            params[name][i] = float(rng.uniform(a, b))
    for name, (lo, hi) in ranges.items():
        if scene.spec.quantities[name].kind == "count":  # objects present: a whole number, each equally likely
            params[name] = float(rng.integers(int(lo), int(hi) + 1))
        elif isinstance(params[name], list):
            params[name] = [float(rng.uniform(lo, hi)) for _ in params[name]]
        else:
            params[name] = float(rng.uniform(lo, hi))
    return params


def check_ranges(scene, ranges: dict) -> dict[str, list[float]]:
    """Explicit ranges {quantity: [low, high]} must name randomised quantities of the scene."""
    if not ranges:
        return {}
    if scene is None:
        raise ConfigError("explicit ranges need a worldsim scene", field="ranges")
    out = {}
    for name, r in ranges.items():
        q = scene.spec.quantities.get(name)
        if q is None or q.mode == "fixed":
            raise ConfigError(f"{name!r} is not a randomised quantity of {scene.spec.name}", field=f"ranges.{name}")
        if not (isinstance(r, (list, tuple)) and len(r) == 2 and all(isinstance(x, (int, float)) for x in r) and r[0] <= r[1]):
            raise ConfigError(f"expected [low, high] with low <= high, got {r!r}", field=f"ranges.{name}")
        if q.kind == "count" and not (all(float(x).is_integer() for x in r) and q.id[0] <= r[0] and r[1] <= q.id[1]):
            # the scene has objects for its own count range only (its MJCF bodies; spec `optional` objects)
            raise ConfigError(f"a count range is whole numbers inside the scene's {list(q.id)}, got {r!r}",
                              field=f"ranges.{name}")
        out[name] = [float(r[0]), float(r[1])]
    return out

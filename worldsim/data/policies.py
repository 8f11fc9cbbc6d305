"""Action policies for collecting data.

A policy is built once per episode: `policy.episode(rng, space, scene)` returns `act(t, state) -> action`, where
`rng` is the episode's own generator (so actions depend only on (seed, split, index)), `space` the env's Box action
space and `state` the current frame's record (qpos, qvel, object_pos, ..., and `env`, the unwrapped env, for
scripted policies that need more).

| name     | actions                                                                                          |
|----------|--------------------------------------------------------------------------------------------------|
| zero     | all zeros (clipped into the box): the scene's passive dynamics                                    |
| uniform  | independent uniform draws over the whole box, each held for `hold` frames (default 1)            |
| smooth   | temporally correlated: an AR(1) Gaussian process per dimension (correlation time `tau` frames),   |
|          | mapped through the normal CDF so that each action is still uniform over the box: it moves like a |
|          | controller and still covers the whole range (narrow training actions make models ignore actions) |
| scripted | a per-scene controller from `SCRIPTED` (keyed by scene name; `register_scripted` adds one)        |
| callable | a user's function `f(t, state, rng, space) -> action`, given as `module:function`                 |

Scripted policies: `Reacher-v5` drives the fingertip to the target (inverse kinematics + PD); `push` moves the pusher
to the block and pushes it to the goal (worldsim/sim/push_policy.py). A new scene registers its controller with
`register_scripted(scene_name, factory)`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from worldsim.errors import ActionError, ConfigError

Act = Callable[[int, dict], np.ndarray]


def _clip(a, space) -> np.ndarray:
    return np.clip(np.asarray(a, dtype=np.float32), space.low, space.high)


@dataclass(frozen=True)
class Zero:
    def episode(self, rng, space, scene) -> Act:
        zero = _clip(np.zeros(space.shape), space)
        return lambda t, state: zero


@dataclass(frozen=True)
class Uniform:
    """Independent uniform draws over the box, each held for `hold` frames (1: a fresh draw every frame; the
    evaluation's fresh actuated episodes hold theirs for 5, `worldsim.eval.paired.ACTION_HOLD`)."""

    hold: int = 1

    def __post_init__(self):
        if isinstance(self.hold, bool) or not isinstance(self.hold, int) or self.hold < 1:
            raise ConfigError(f"must be a whole number of frames >= 1, got {self.hold!r}", field="policy_options.hold")

    def episode(self, rng, space, scene) -> Act:
        held: list[np.ndarray] = []

        def act(t: int, state: dict) -> np.ndarray:
            if not held or t % self.hold == 0:
                held[:] = [rng.uniform(space.low, space.high).astype(np.float32)]
            return held[0].copy()

        return act


@dataclass(frozen=True)
class Smooth:
    """AR(1) with correlation time `tau` frames: z_t = rho z_{t-1} + sqrt(1 - rho^2) e_t, e_t ~ N(0, 1), so z_t
    stays N(0, 1); the action is low + (high - low) * Phi(z_t), uniform over the box at every frame."""

    tau: float = 10.0

    def __post_init__(self):
        if not (isinstance(self.tau, (int, float)) and self.tau > 0):
            raise ConfigError(f"tau must be a positive number of frames, got {self.tau!r}", field="policy_options.tau")

    def episode(self, rng, space, scene) -> Act:
        rho = math.exp(-1.0 / self.tau)
        z = rng.standard_normal(space.shape)
        lo, hi = space.low.astype(np.float64), space.high.astype(np.float64)

        def act(t, state):
            nonlocal z
            if t > 0:
                z = rho * z + math.sqrt(1 - rho * rho) * rng.standard_normal(space.shape)
            u = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0))) if z.size else z
            return (lo + (hi - lo) * u).astype(np.float32)

        return act


# --- scripted, per scene ------------------------------------------------------------------------------------

SCRIPTED: dict[str, Callable] = {}


def register_scripted(scene: str, factory: Callable) -> None:
    """Register `factory(rng, space) -> act(t, state)` as the scripted policy of `scene` (a worldsim scene name or
    gymnasium id). The push scene's owner registers its pusher-towards-block controller here."""
    SCRIPTED[scene] = factory


def _reacher(rng, space) -> Act:
    """Reacher-v5: inverse kinematics of the two-link arm (links 0.1 m and 0.11 m) to the target (qpos[2:4]), then a
    PD controller on the joint angles; a little noise keeps the episodes apart."""
    l1, l2, kp, kd = 0.1, 0.11, 2.0, 0.1

    def act(t, state):
        q, qd = state["qpos"], state["qvel"]
        x, y = q[2], q[3]
        c2 = np.clip((x * x + y * y - l1 * l1 - l2 * l2) / (2 * l1 * l2), -1.0, 1.0)
        q2 = math.acos(c2)
        q1 = math.atan2(y, x) - math.atan2(l2 * math.sin(q2), l1 + l2 * math.cos(q2))
        err = np.array([math.remainder(q1 - q[0], 2 * math.pi), math.remainder(q2 - q[1], 2 * math.pi)])
        return _clip(kp * err - kd * qd[:2] + 0.05 * rng.standard_normal(2), space)

    return act


def _push(rng, space) -> Act:
    """The push scene: worldsim/sim/push_policy.py moves the pusher to the block and pushes it to the goal."""
    from worldsim.sim.push_policy import scripted_push_policy

    return lambda t, state: _clip(scripted_push_policy(state["env"]), space)


register_scripted("Reacher-v5", _reacher)
register_scripted("push", _push)


@dataclass(frozen=True)
class Scripted:
    def episode(self, rng, space, scene) -> Act:
        if scene not in SCRIPTED:
            raise ConfigError(f"no scripted policy for {scene!r}; scripted policies exist for {sorted(SCRIPTED)}",
                              field="policy")
        return SCRIPTED[scene](rng, space)


@dataclass(frozen=True)
class UserCallable:
    """A user's `f(t, state, rng, space) -> action`, named `module:function` so worker processes can import it."""

    function: str = ""
    _fn: Callable | None = field(default=None, compare=False, repr=False)

    def resolve(self) -> Callable:
        if self._fn is not None:
            return self._fn
        module, _, name = self.function.partition(":")
        if not (module and name):
            raise ConfigError(f"a callable policy is `module:function`, got {self.function!r}", field="policy_options.function")
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot import {self.function!r}: {e}", field="policy_options.function") from None

    def episode(self, rng, space, scene) -> Act:
        fn = self.resolve()
        who = self.function or f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', fn)}"
        return lambda t, state: _checked(fn(t, state, rng, space), space, who, t)


def _checked(action, space, who: str, t: int) -> np.ndarray:
    """A user's action, refused (not clipped) when it is not numeric, of another shape, non-finite or outside the
    box, naming the function: out-of-range actions are errors so a policy bug is loud (docs/decisions.md)."""
    try:
        a = np.asarray(action, dtype=np.float32)
    except (TypeError, ValueError):
        raise ActionError(f"frame {t}: action must be numeric, got {type(action).__name__}", source=who,
                          field="action") from None
    if a.shape != space.shape:
        raise ActionError(f"frame {t}: expected shape {space.shape}, got {a.shape}", source=who, field="action")
    if not np.all(np.isfinite(a)):
        raise ActionError(f"frame {t}: action has NaN or inf: {a.tolist()}", source=who, field="action")
    if np.any(a < space.low - 1e-6) or np.any(a > space.high + 1e-6):
        raise ActionError(f"frame {t}: action {a.tolist()} outside bounds "
                          f"[{space.low.tolist()}, {space.high.tolist()}]", source=who, field="action")
    return a


POLICIES: dict[str, type] = {"zero": Zero, "uniform": Uniform, "smooth": Smooth, "scripted": Scripted,
                             "callable": UserCallable}


def describe(policy) -> dict:
    """{name, options} of a policy object, as stored in the split's `policy` attribute."""
    names = {cls: name for name, cls in POLICIES.items()}
    if type(policy) not in names:
        return {"name": "callable", "options": {"function": f"{type(policy).__module__}:{type(policy).__qualname__}"}}
    if isinstance(policy, UserCallable):
        fn = policy._fn
        return {"name": "callable", "options": {"function": policy.function if fn is None else
                                                f"{fn.__module__}:{fn.__qualname__}"}}
    opts = {f: getattr(policy, f) for f in policy.__dataclass_fields__ if not f.startswith("_")}
    return {"name": names[type(policy)], "options": opts}


def make_policy(name: str, options: dict | None = None):
    """A policy by name with its options (e.g. `smooth` with {"tau": 5}, `callable` with {"function": "m:f"})."""
    if name not in POLICIES:
        raise ConfigError(f"unknown policy {name!r}; known: {sorted(POLICIES)}", field="policy")
    options = dict(options or {})
    cls = POLICIES[name]
    allowed = {f for f in cls.__dataclass_fields__ if not f.startswith("_")}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"unknown option {unknown[0]!r} for policy {name!r}; allowed: {sorted(allowed)}",
                          field=f"policy_options.{unknown[0]}")
    return cls(**options)

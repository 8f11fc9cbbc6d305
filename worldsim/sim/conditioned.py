"""The scene quantities a model is told about (pixels cannot show them) as one flat vector per episode.

Shared by training (what the model learns from) and rollouts (what a user asks for), so both read the same order:
the spec's `conditioned` quantities in spec order, per-object ones expanded over the spec's objects (0 for objects a
quantity does not apply to, or that are inactive)."""

from __future__ import annotations

import numpy as np

from worldsim.errors import SceneError
from worldsim.sim.spec import SceneSpec


def param_names(spec: SceneSpec) -> list[str]:
    """Names of the vector's entries, e.g. ['mass[ball0]', 'mass[ball1]', 'gravity']."""
    out = []
    for name in spec.conditioned:
        if spec.quantities[name].per_object:
            out += [f"{name}[{o.name}]" for o in spec.objects]
        else:
            out.append(name)
    return out


def param_vector(spec: SceneSpec, params: dict) -> np.ndarray:
    """An episode's conditioned quantities as a float32 vector of len(param_names(spec))."""
    out: list[float] = []
    for name in spec.conditioned:
        if name not in params:
            raise SceneError(f"episode parameters lack the conditioned quantity {name!r}", source=spec.source,
                             field=f"params.{name}")
        v = params[name]
        if spec.quantities[name].per_object:
            out += [0.0 if x is None else float(x) for x in v]
        else:
            out.append(float(v))
    return np.asarray(out, dtype=np.float32)

"""A scripted pusher for the `push` scene (and any scene built like it): the recorder's expert policy.

`scripted_push_policy(env) -> action` reads the state of a `SceneEnv` and returns the pusher's velocity command.
It pushes the reward object (`reward.object`) to the goal site one axis at a time ("Manhattan" pushing): blocks
cannot rotate and pusher-block contacts are frictionless, so a push on a face moves a block along that face's
normal, i.e. along x or y. For the axis with error left (x first), it

1. gets to the pushing side of the block, going around it (out of its lateral band first) if it is on the wrong side;
2. lines up with the block's centre on that side;
3. pushes along the axis, slowing down as the error shrinks, correcting its lateral offset as it goes;

and holds still once both errors are under `TOLERANCE` (so the block's centre is within TOLERANCE * sqrt(2) of
the goal, inside `success_radius`). It is a plain function of the state: deterministic, no memory between calls.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from worldsim.errors import SceneError
from worldsim.sim.events import actuated_objects

TOLERANCE = 0.025  # m, per axis: the block counts as delivered when both errors are below it
GAIN = 6.0  # 1/s, proportional gain from position error to velocity command
CLEARANCE = 0.02  # m, gap kept between pusher and block when moving around it


@cache
def _ids(scene) -> tuple[int, int, int, int, int]:
    """Looked up once per scene: the pusher's body and geom (the actuated object), the block's body and geom (the
    reward object) and the goal site."""
    names = [o.name for o in scene.spec.objects]
    agents = sorted(actuated_objects(scene))
    if scene.spec.reward is None or not agents:
        raise SceneError("the scripted pusher needs an actuated object and a reward object to push",
                         source=scene.spec.source, field="reward")
    agent, block = scene.objects[agents[0]], scene.objects[names.index(scene.spec.reward.object)]
    return agent.body, int(agent.geoms[0]), block.body, int(block.geoms[0]), scene.goal_site


def scripted_push_policy(env) -> np.ndarray:
    """The pusher's velocity command (the env's action) for the current state of `env` (a push-like SceneEnv)."""
    agent, agent_geom, block, block_geom, goal = _ids(env.scene)
    half = float(env.model.geom_size[block_geom, 0])  # sizes from the episode's model (a scene may draw them)
    radius = float(env.model.geom_size[agent_geom, 0])
    d = env.data
    p, b, g = d.xpos[agent, :2], d.xpos[block, :2], d.site_xpos[goal, :2]
    vmax = env.action_space.high.astype(np.float64)
    err = g - b
    if np.all(np.abs(err) < TOLERANCE):
        return np.zeros(2, np.float32)
    axis = 0 if abs(err[0]) >= TOLERANCE else 1
    lat = 1 - axis
    s = np.sign(err[axis])
    reach = half + radius  # centre distance along the axis when pusher and face touch
    band = half + radius + CLEARANCE  # lateral distance at which the pusher clears the block
    behind = s * (b[axis] - p[axis])  # > 0 on the pushing side
    offset = p[lat] - b[lat]
    v = np.zeros(2)
    if behind > reach - 0.02 and abs(offset) < 0.02:
        # 3. in position: push, slowing down near the goal, and keep centred on the face
        v[axis] = s * np.clip(GAIN * abs(err[axis]), 0.08, vmax[axis])
        v[lat] = -GAIN * offset
        return np.clip(v, -vmax, vmax).astype(np.float32)
    target = p.copy()
    if behind > reach - 0.005:
        # 2. on the pushing side: line up with the face, standing a little off it
        target[axis] = b[axis] - s * (reach + 2 * CLEARANCE)
        target[lat] = b[lat]
    elif abs(offset) < band:
        # 1a. on the wrong side and within the block's lateral band: step out of the band first
        side = np.sign(offset) if offset != 0 else 1.0
        target[lat] = b[lat] + side * (band + CLEARANCE)
    else:
        # 1b. outside the band: travel along the axis to the pushing side
        target[axis] = b[axis] - s * (reach + 2 * CLEARANCE)
    v = GAIN * (target - p)
    return np.clip(v, -vmax, vmax).astype(np.float32)


class ScriptedPusher:
    """The same policy as a callable object, for code that wants `policy(env)` with a constructor."""

    def __init__(self, env):
        _ids(env.scene)  # fail early on a scene it cannot push in
        self.env = env

    def __call__(self, env=None) -> np.ndarray:
        return scripted_push_policy(env if env is not None else self.env)


__all__ = ["ScriptedPusher", "scripted_push_policy"]

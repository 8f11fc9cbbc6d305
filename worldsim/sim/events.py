"""Events of an episode, detected from MuJoCo contacts (every physics step) and from visibility (every frame).

Captions are made from these events (worldsim/sim/captions.py), so a caption says only what the simulator saw.
Each event is a small dict with a `frame` and a `type`; `info["events"]` holds the events of that frame:

| type        | keys                 | when                                                                        |
|-------------|----------------------|-----------------------------------------------------------------------------|
| `shot`      | camera               | frame 0 (the opening camera) and every cut to another camera                |
| `bounce`    | object, surface      | an object starts touching a piece of scenery (a wall, the floor)            |
| `collision` | objects (two names)  | two objects start touching (neither is actuated)                            |
| `push`      | agent, object        | an actuated object starts touching another object                           |
| `occluded`  | object               | an object that was seen becomes hidden while it is in view (visible < 2%)   |
| `emerged`   | object               | a hidden object is seen again (visible > 20%)                               |
| `goal`      | object               | the reward object comes within the success radius of the goal               |

A contact event at frame k happened during the physics steps between frames k-1 and k. A contact counts as a new
event only when the pair was apart for at least `REBOUND_SECONDS` before (`PUSH_REBOUND_SECONDS` for a pair with
an actuated object), so a contact that flickers from step to step is one event, not hundreds, while two real
bounces of a ball off the floor (tens of ms apart even when a collision drives the ball back into the floor) stay
two. A pusher pressing on a block chatters at up to ~25 Hz, so one push is one event unless it backs off for 0.2 s.
"""

from __future__ import annotations

import mujoco
import numpy as np

from worldsim.sim.scene import Scene

HIDDEN_BELOW = 0.02  # visible fraction under which an object in view counts as hidden
SEEN_ABOVE = 0.2  # visible fraction over which a hidden object counts as seen again (hysteresis against flicker)
REBOUND_SECONDS = 0.01  # a pair apart for less than this and touching again continues the same contact event
PUSH_REBOUND_SECONDS = 0.2  # the same for a pair with an actuated object: a push is one event while it lasts
CONTACT_SAMPLE_SECONDS = 0.001  # contacts are sampled this often; the shortest (stiff elastic bounces) last ~3 ms


def actuated_objects(scene: Scene) -> set[int]:
    """Indices of the objects moved by an actuator (through a joint of their body): the agents."""
    m = scene.model
    bodies = set()
    for a in range(m.nu):
        if int(m.actuator_trntype[a]) in (int(mujoco.mjtTrn.mjTRN_JOINT), int(mujoco.mjtTrn.mjTRN_JOINTINPARENT)):
            bodies.add(int(m.jnt_bodyid[m.actuator_trnid[a, 0]]))
    return {k for k, ids in enumerate(scene.objects) if ids.body in bodies}


class ContactEvents:
    """Watches contacts after every physics step and reports the contacts that began (see the module docstring)."""

    def __init__(self, scene: Scene):
        m = scene.model
        self.names = [o.name for o in scene.spec.objects]
        self.agents = actuated_objects(scene)
        self.rebound_steps = max(1, round(REBOUND_SECONDS / m.opt.timestep))
        self.push_rebound_steps = max(1, round(PUSH_REBOUND_SECONDS / m.opt.timestep))
        # geom id -> object index, or -1 for scenery; scenery is named by its geom name
        self._obj = np.full(m.ngeom, -1, dtype=np.int64)
        for k, ids in enumerate(scene.objects):
            self._obj[ids.geoms] = k
        self._geom_name = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) or f"geom {g}" for g in range(m.ngeom)]
        self.reset()

    def reset(self) -> None:
        self._last_touch: dict[tuple, int] = {}  # pair -> physics step it was last seen touching
        self._step = 0
        self._pending: list[dict] = []

    def after_step(self, data: mujoco.MjData, steps: int = 1) -> None:
        """Call after every `steps` physics steps (at most CONTACT_SAMPLE_SECONDS apart)."""
        self._step += steps
        n = data.ncon
        if n == 0:
            return
        for g1, g2 in zip(data.contact.geom1[:n], data.contact.geom2[:n]):
            pair = self._pair(int(g1), int(g2))
            if pair is None:
                continue
            last = self._last_touch.get(pair)
            agent = pair[0] == "objects" and (pair[1] in self.agents or pair[2] in self.agents)
            if last is None or self._step - last > (self.push_rebound_steps if agent else self.rebound_steps):
                self._pending.append(self._event(pair))
            self._last_touch[pair] = self._step

    def take(self, frame: int) -> list[dict]:
        """The events begun since the last call, in order, stamped with `frame`."""
        out = [{"frame": frame, **e} for e in self._pending]
        self._pending = []
        return out

    def _pair(self, g1: int, g2: int) -> tuple | None:
        a, b = int(self._obj[g1]), int(self._obj[g2])
        if a < 0 and b < 0:
            return None  # scenery touching scenery
        if a < 0 or b < 0:
            k, g = (a, g2) if a >= 0 else (b, g1)
            return ("surface", k, self._geom_name[g])
        return ("objects", min(a, b), max(a, b))

    def _event(self, pair: tuple) -> dict:
        if pair[0] == "surface":
            return {"type": "bounce", "object": self.names[pair[1]], "surface": pair[2]}
        a, b = pair[1], pair[2]
        if a in self.agents or b in self.agents:
            agent, other = (a, b) if a in self.agents else (b, a)
            return {"type": "push", "agent": self.names[agent], "object": self.names[other]}
        return {"type": "collision", "objects": [self.names[a], self.names[b]]}


class VisibilityEvents:
    """Turns per-frame visible fractions into `occluded` / `emerged` events, per camera shot."""

    def __init__(self, names: list[str]):
        self.names = names
        self.reset()

    def reset(self) -> None:
        self._state: list[str | None] = [None] * len(self.names)  # "seen", "hidden", "out" (of view) or None

    def update(self, frame: int, visible: np.ndarray, full: np.ndarray, active: np.ndarray, cut: bool) -> list[dict]:
        """`visible`: visible fractions; `full`: pixels each object would cover unoccluded; `cut`: the camera
        changed at this frame (states restart without events: a cut is not an occlusion)."""
        out = []
        for k, name in enumerate(self.names):
            if not active[k]:
                continue
            if full[k] == 0:
                now = "out"
            elif visible[k] < HIDDEN_BELOW:
                now = "hidden"
            elif visible[k] > SEEN_ABOVE:
                now = "seen"
            else:
                now = self._state[k] or "seen"  # between the thresholds: no change
            before = self._state[k]
            if not cut and before == "seen" and now == "hidden":
                out.append({"frame": frame, "type": "occluded", "object": name})
            elif not cut and before == "hidden" and now == "seen":
                out.append({"frame": frame, "type": "emerged", "object": name})
            self._state[k] = now
        return out

"""Physics-law probes: does a rollout obey the laws MuJoCo obeys? (issue 8, item 5)

Each probe reads object tracks in scene units (`metrics.tracks`: centres parsed by colour and lifted through the
true camera onto the motion plane) from three sources, so a model's figure sits beside its references:
`state` (MuJoCo's true positions: the law itself, up to finite differences), `mujoco` (the parser on MuJoCo's frames:
the floor a perfect video reaches at this resolution) and `model` (the parser on the predicted frames).
Which frames to use is decided from MuJoCo alone (its contact events and visibility), never from the model.

- **Gravity** (Kang et al.'s parabolic motion; `parabola`, `parabola_g`, `bounce`): in every stretch of at least
  `MIN_FIT_FRAMES` trusted frames without a MuJoCo contact event, fit height(t) = a + b t - g t^2 / 2 by least
  squares (height against gravity's in-plane direction); report g_fit / g_true (per episode: the mean over its
  stretches). Only stretches where MuJoCo's own positions fit g within `FREE_FALL_TOLERANCE` (5%) count: an object
  resting, rolling or sliding on a floor is not in free fall (so the `state` column is ~1 by construction).
- **Restitution at wall bounces** (`bounce`, `parabola`, `collide`): for a MuJoCo `bounce` event on a surface whose
  name starts with `wall` at frame f (the contact happened between frames f - 1 and f), the velocity along the wall's
  normal before (frames f-2 -> f-1) and after (f -> f+1); e = -v_after / v_before. The normal is the motion-plane
  axis along which MuJoCo's velocity changes most once gravity's share is removed (the flip). MuJoCo's walls are elastic: e = 1.
- **Momentum and energy at collisions** (`collide`, `bounce`): for a MuJoCo `collision` event between two objects at
  frame f, velocities before and after as above; momentum change |dp - M g 2dt| / (sum of m |v| before) (gravity's
  impulse over the two frames between the velocity samples is removed; g is gravity's part in the motion plane) and energy change
  (E_after - E_before) / KE_before with E = sum of m |v|^2 / 2 + m g height. Masses come from MuJoCo's model (the
  model is told them where the spec conditions them). MuJoCo's collisions are elastic: both are ~0.
Events with another event of the same objects within two frames are skipped (double contacts, corners), and so are
wall bounces of actuated objects (the `push` pusher: its velocity is commanded). Collisions count only between
objects neither of which is actuated (MuJoCo's `collision` events already exclude agents; theirs are `push`).
"""

from __future__ import annotations

import numpy as np

from worldsim.eval.metrics import Tracks
from worldsim.eval.paired import Episodes

MIN_FIT_FRAMES = 6
FREE_FALL_TOLERANCE = 0.05
SOURCES = ("state", "mujoco", "model")


def _series(tr: Tracks, source: str) -> tuple[np.ndarray, np.ndarray]:
    """World tracks (B, T, K, 3) of a source and where they can be used (B, T, K)."""
    pos = {"state": tr.state, "mujoco": tr.mujoco, "model": tr.model}[source]
    ok = tr.trusted & (tr.found if source == "model" else True)
    return pos, ok & np.isfinite(pos).all(-1)


def _plane_gravity(episodes: Episodes, i: int, tr: Tracks) -> np.ndarray:
    """Gravity's component in the motion plane (objects on a floor feel none of the rest)."""
    g = episodes.gravity[i].astype(np.float64)
    normal = tr.plane_normal
    return g - (g @ normal) * normal


def _isolated(contacts: dict[int, list[int]], objs: list[int], frame: int) -> bool:
    """No other contact event of these objects within two frames (double contacts, corners)."""
    return all(sum(abs(g - frame) <= 2 for g in contacts[o]) == 1 for o in objs)


def _event_frames(events: list[dict], names: list[str]) -> dict[int, list[int]]:
    """Object index -> the frames at which it had any contact event."""
    out: dict[int, list[int]] = {i: [] for i in range(len(names))}
    for e in events:
        objs = [e["object"]] if "object" in e else e.get("objects", []) if e["type"] in ("collision", "push") else []
        if e["type"] in ("bounce", "collision", "push"):
            for o in objs:
                out[names.index(o)].append(e["frame"])
    return out


def _fit_g(pos: np.ndarray, idx: np.ndarray, up: np.ndarray, fps: float) -> float:
    """Least-squares g of height(t) = a + b t - g t^2 / 2 over frames idx."""
    tt = idx / fps
    design = np.stack([np.ones_like(tt), tt, -0.5 * tt**2], -1)
    coef, *_ = np.linalg.lstsq(design, pos[idx] @ up, rcond=None)
    return float(coef[2])


def gravity(tr: Tracks, episodes: Episodes, names: list[str]) -> dict[str, np.ndarray]:
    """Per episode, g_fit / g_true for each source (NaN where no stretch qualifies). Each value is (B,)."""
    b, t, k = tr.trusted.shape
    fps = episodes.fps
    out = {s: np.full(b, np.nan) for s in SOURCES}
    series = {s: _series(tr, s) for s in SOURCES}
    for i in range(b):
        g_vec = _plane_gravity(episodes, i, tr)
        g_true = float(np.linalg.norm(g_vec))
        if g_true < 1e-9:  # gravity is not in the motion plane (e.g. `collide`, seen from above): no probe
            continue
        up = -g_vec / g_true
        contacts = _event_frames(episodes.events[i], names)
        fits: dict[str, list[float]] = {s: [] for s in SOURCES}
        for o in range(k):
            cuts = sorted({f - tr.first_frame for f in contacts[o] if 0 < f - tr.first_frame < t} | {0, t})
            for a, z in zip(cuts[:-1], cuts[1:]):  # frames a .. z-1 have no contact event between them
                idx = np.arange(a, z)
                s_pos, s_ok = series["state"]
                if idx.size < MIN_FIT_FRAMES or not s_ok[i, idx, o].all():
                    continue
                if abs(_fit_g(s_pos[i, :, o], idx, up, fps) / g_true - 1) > FREE_FALL_TOLERANCE:
                    continue  # resting, rolling or held: MuJoCo itself is not in free fall here
                for source, (pos, ok) in series.items():
                    if ok[i, idx, o].all():  # a frame the source cannot measure spoils the stretch for it
                        fits[source].append(_fit_g(pos[i, :, o], idx, up, fps) / g_true)
        for source, vals in fits.items():
            if vals:
                out[source][i] = float(np.mean(vals))
    return out


def _velocity(pos: np.ndarray, ok: np.ndarray, f0: int, f1: int, fps: float) -> np.ndarray | None:
    if f0 < 0 or f1 >= len(pos) or not (ok[f0] and ok[f1]):
        return None
    return (pos[f1] - pos[f0]) * fps


def restitution(tr: Tracks, episodes: Episodes, names: list[str], agents: frozenset[int] = frozenset()
                ) -> dict[str, np.ndarray]:
    """Per episode, the mean restitution over its wall bounces inside the window, for each source. (B,) each.
    Objects in `agents` (moved by actuators) are skipped: their velocity is commanded, not bounced."""
    b = tr.trusted.shape[0]
    fps = episodes.fps
    out = {s: np.full(b, np.nan) for s in SOURCES}
    for i in range(b):
        contacts = _event_frames(episodes.events[i], names)
        g_dv = _plane_gravity(episodes, i, tr) * 2.0 / fps  # gravity's change of velocity between the samples
        per_source: dict[str, list[float]] = {s: [] for s in SOURCES}
        for e in episodes.events[i]:
            if e["type"] != "bounce" or not str(e.get("surface", "")).startswith("wall"):
                continue
            o = names.index(e["object"])
            f = e["frame"] - tr.first_frame
            if o in agents or not _isolated(contacts, [o], e["frame"]):
                continue
            s_pos, s_ok = _series(tr, "state")
            vb, va = _velocity(s_pos[i, :, o], s_ok[i, :, o], f - 2, f - 1, fps), _velocity(s_pos[i, :, o], s_ok[i, :, o], f, f + 1, fps)
            if vb is None or va is None:
                continue
            axis = int(np.argmax(np.abs(va - vb - g_dv)))  # the wall's normal: where MuJoCo's velocity flips
            for source in SOURCES:
                pos, ok = _series(tr, source)
                vb, va = _velocity(pos[i, :, o], ok[i, :, o], f - 2, f - 1, fps), _velocity(pos[i, :, o], ok[i, :, o], f, f + 1, fps)
                if vb is not None and va is not None and abs(vb[axis]) > 1e-9:
                    per_source[source].append(-va[axis] / vb[axis])
        for source, vals in per_source.items():
            if vals:
                out[source][i] = float(np.mean(vals))
    return out


def collisions(tr: Tracks, episodes: Episodes, names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Per episode, mean relative momentum and energy change over its two-object collisions, for each source."""
    b = tr.trusted.shape[0]
    fps = episodes.fps
    out = {q: {s: np.full(b, np.nan) for s in SOURCES} for q in ("momentum", "energy")}
    for i in range(b):
        g_vec = _plane_gravity(episodes, i, tr)
        contacts = _event_frames(episodes.events[i], names)
        acc: dict[str, dict[str, list[float]]] = {q: {s: [] for s in SOURCES} for q in out}
        for e in episodes.events[i]:
            if e["type"] != "collision":
                continue
            objs = [names.index(n) for n in e["objects"]]
            if not _isolated(contacts, objs, e["frame"]):
                continue
            f = e["frame"] - tr.first_frame
            m = episodes.masses[i, objs]
            for source in SOURCES:
                pos, ok = _series(tr, source)
                vel = [(_velocity(pos[i, :, o], ok[i, :, o], f - 2, f - 1, fps),
                        _velocity(pos[i, :, o], ok[i, :, o], f, f + 1, fps)) for o in objs]
                if any(v is None for pair in vel for v in pair):
                    continue
                vb, va = np.array([v[0] for v in vel]), np.array([v[1] for v in vel])
                dt = 2.0 / fps  # between the midpoints of the two velocity samples
                dp = (m[:, None] * (va - vb)).sum(0) - m.sum() * g_vec * dt
                scale = float((m * np.linalg.norm(vb, axis=-1)).sum())
                hb = -(pos[i, f - 2:f, objs].mean(0) @ g_vec)  # m g h = -m (g . x)
                ha = -(pos[i, f:f + 2, objs].mean(0) @ g_vec)
                kb = 0.5 * (m * (vb**2).sum(-1)).sum()
                ka = 0.5 * (m * (va**2).sum(-1)).sum()
                if scale > 1e-9 and kb > 1e-12:
                    acc["momentum"][source].append(float(np.linalg.norm(dp)) / scale)
                    acc["energy"][source].append(float((ka + (m * ha).sum()) - (kb + (m * hb).sum())) / kb)
        for q in out:
            for source, vals in acc[q].items():
                if vals:
                    out[q][source][i] = float(np.mean(vals))
    return out


def probe_all(tr: Tracks, episodes: Episodes, names: list[str], agents: frozenset[int] = frozenset()
              ) -> dict[str, dict[str, np.ndarray]]:
    """Every physics-law probe: {probe: {source: (B,) per-episode values}}. `agents`: indices of actuated objects."""
    col = collisions(tr, episodes, names)
    return {"gravity_ratio": gravity(tr, episodes, names), "restitution": restitution(tr, episodes, names, agents),
            "collision_momentum_change": col["momentum"], "collision_energy_change": col["energy"]}

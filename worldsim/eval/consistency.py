"""Consistency probes (issue 8, item 4): does the world a video shows stay one world?

Sora's report (Brooks et al. 2024, "Video generation models as world simulators") lists *3D consistency* (objects
move coherently as the camera moves), *long-range coherence* across shots (objects persist where they were) and
*interacting with the world* (a painter's strokes persist). worldsim checks each against MuJoCo, through the true
cameras, with the colour parser of Kang et al. (2024) (`parse.py`). Which frames and objects count is decided from
MuJoCo only (`parse.trusted`: fully visible, not cut by the image border, taking part).

- **cut consistency**: multi-shot rollouts, one schedule for the batch: the first camera, a cut to the scene's
  second camera at rollout step `CUT_STEPS[0]` and back at `CUT_STEPS[1]`. At a cut into frame f, the prediction's
  centre in frame f - 1 is lifted through frame f - 1's true camera onto the plane through the object's true
  position parallel to the motion plane, moved by MuJoCo's displacement from f - 1 to f, and projected through frame
  f's true camera: where the previous shot left it. *Pass* when the prediction's centre in frame f lies within
  `CUT_TOLERANCE_PX` of that point; a lost object fails.
- **orbit 3D consistency** (scenes whose camera moves, `orbit`): each object's centre in the last context frame is
  lifted the same way, moved by MuJoCo's displacement and projected through each rollout frame's true camera;
  drift = the prediction's distance from that point (px); *pass* when <= `ORBIT_TOLERANCE_PX`.
- **push persistence** (`push`, scripted expert): each episode's window is placed so that the pushed block's last
  motion ends `PERSIST_FRAMES` frames before the rollout's end, and kept when MuJoCo moved the block >= `MOVED_PX`
  during the rollout; over the frames after the push (block at rest), *pass* when the prediction's block centre
  lies within `PERSIST_TOLERANCE_PX` of the parser on MuJoCo's frame.
- **push contact** (`push`, scripted expert): each episode's window is placed so that its rollout begins on the frame
  the pushed block starts to move (at rest in the last context frame), for `CONTACT_HORIZON` frames, and kept when
  MuJoCo moved the block >= `MOVED_PX` in them. The share of MuJoCo's push the prediction reproduces: its block's
  displacement from the last context frame, projected on MuJoCo's, over MuJoCo's (1 exact, 0 an unmoved block);
  per step *pass* when the block centre lies within `PERSIST_TOLERANCE_PX` of the parser on MuJoCo's frame.

The exact simulator passes every check of all four.
Each probe reports, per episode: the pass rate (NaN for an episode with nothing to check), the error (px or m, over
pairs the prediction shows), and the fraction of checks where the prediction lost the object. Pixel tolerances are
given at 32 px and scale with the frame width. They were fixed on MuJoCo's frames alone (docs/metrics.md,
"Consistency probes"): the parser on MuJoCo's frames passes every check, and copy-last (no cut, a frozen camera, an
unpushed block) fails them.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import numpy as np

from worldsim.errors import ConfigError
from worldsim.eval.paired import Episodes, Paired, fresh_episodes, rollout, windows
from worldsim.eval.parse import backproject, parse, trusted
from worldsim.sim.spec import MOTION_PLANES

CUT_STEPS = (4, 10)  # rollout steps of the two cuts (to the second camera and back)
CUT_TOLERANCE_PX = 1.5  # at 32 px; MuJoCo's frames: at most 1.21 px (64 episodes of each of 6 scenes, 1584 checks)
ORBIT_TOLERANCE_PX = 1.0  # at 32 px; MuJoCo's frames: every check under 0.8 px (64 orbit episodes)
PERSIST_FRAMES = 8  # frames after the push in each push window
PUSH_HORIZON = 32  # rollout frames of a push window (the push's last 24 frames, then 8 at rest)
MOVED_PX = 2.0  # at 32 px: the block must move at least this far in the rollout to be checked
PERSIST_TOLERANCE_PX = 1.0  # at 32 px; MuJoCo's frames: 0 by construction; copy-last: 4.8 px (50 push windows)
REST_M_PER_FRAME = 1e-4  # a block moving less than 0.1 mm per frame is at rest
CONTACT_HORIZON = 8  # rollout frames of a contact window, from the first frame the block moves


def _scale(resolution: int) -> float:
    return resolution / 32.0


def _normal(motion_plane: str) -> np.ndarray:
    return np.eye(3)[[a for a in range(3) if a not in MOTION_PLANES[motion_plane]][0]]


def project(points: np.ndarray, k: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """World points (..., 3) -> pixels (..., 2) through batched cameras k (..., 3, 3), world_to_cam (..., 4, 4)."""
    p = np.einsum("...ij,...j->...i", world_to_cam[..., :3, :3], points) + world_to_cam[..., :3, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        uv = p[..., :2] / np.where(p[..., 2:3] > 0, p[..., 2:3], np.nan)
    return uv * np.stack([k[..., 0, 0], k[..., 1, 1]], -1) + k[..., :2, 2]


# --- cut consistency --------------------------------------------------------------------------------------

def cut_shots(cameras: tuple[str, ...], start: int, context: int, horizon: int) -> list[list]:
    """The shared multi-shot schedule (episode frames) of the cut probe."""
    if len(cameras) < 2:
        raise ConfigError(f"cut consistency needs a scene with two cameras, got {list(cameras)}", field="--probes")
    if horizon <= CUT_STEPS[1]:
        raise ConfigError(f"cut consistency needs a horizon above {CUT_STEPS[1]} frames, got {horizon}",
                          field="--horizon")
    return [[0, cameras[0]], [start + context + CUT_STEPS[0], cameras[1]],
            [start + context + CUT_STEPS[1], cameras[0]]]


def cut_episodes(scene: str, n: int, context: int, horizon: int, **kw) -> Episodes:
    from worldsim.sim.registry import get_scene

    start = kw.pop("start", 0)
    shots = cut_shots(get_scene(scene).spec.cameras, start, context, horizon)
    return fresh_episodes(scene, n, context + horizon, start=start, shots=shots, **kw)


def cut_consistency(paired: Paired, colours: np.ndarray, motion_plane: str) -> dict[str, np.ndarray]:
    """Per episode (B,): pass rate, error (px) against the carried-over position, error (px) against the parser on
    MuJoCo's frame, and the fraction of checks where the prediction lost the object."""
    ep, k, h = paired.episodes, paired.context, paired.horizon
    cams = ep.frame_cameras
    if cams is None:
        raise ConfigError("cut consistency needs multi-shot episodes (cut_episodes)", field="episodes")
    frames = np.concatenate([ep.frames[:, :k], paired.prediction], 1)  # (B, k + H, ...): context then prediction
    cuts = [f for f in range(k + 1, k + h) if cams[f] != cams[f - 1]]
    pp, pt = parse(frames, colours), parse(ep.frames[:, :k + h], colours)
    ok = trusted(ep.visible[:, :k + h], pt.border, ep.active[:, None, :])
    tol = CUT_TOLERANCE_PX * _scale(frames.shape[-2])
    normal = _normal(motion_plane)
    errs, errs_m, passed, lost, checked = [], [], [], [], []
    for f in cuts:
        world = backproject(pp.centre[:, f - 1], ep.intrinsics[:, f - 1, None], ep.extrinsics[:, f - 1, None],
                            ep.object_pos[:, f - 1], normal)  # (B, K, 3)
        carried = project(world + ep.object_pos[:, f] - ep.object_pos[:, f - 1], ep.intrinsics[:, f, None],
                          ep.extrinsics[:, f, None])
        e = np.linalg.norm(pp.centre[:, f] - carried, axis=-1)  # (B, K), NaN where lost before or after
        check = ok[:, f - 1] & ok[:, f]
        errs.append(np.where(check, e, np.nan))
        errs_m.append(np.where(check, np.linalg.norm(pp.centre[:, f] - pt.centre[:, f], axis=-1), np.nan))
        passed.append(check & (e <= tol))
        lost.append(check & ~np.isfinite(e))
        checked.append(check)
    checked, passed, lost = (np.concatenate(x, 1) for x in (checked, passed, lost))
    n = checked.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, passed.sum(1) / n, np.nan)
        missing = np.where(n > 0, lost.sum(1) / n, np.nan)
    with np.errstate(invalid="ignore"), _quiet():
        err = np.nanmean(np.concatenate(errs, 1), 1)
        err_m = np.nanmean(np.concatenate(errs_m, 1), 1)
    return {"cut_pass_rate": rate, "cut_error_px": err, "cut_error_px_vs_mujoco": err_m, "cut_missing": missing}


# --- orbit 3D consistency ---------------------------------------------------------------------------------

def orbit_consistency(paired: Paired, colours: np.ndarray, motion_plane: str) -> dict[str, np.ndarray]:
    """Per episode (B,): pass rate, mean drift (px) and lost fraction; `orbit_drift_px_per_step` (B, H).

    Anchor: the object's centre in the last context frame lifted through that frame's true camera onto the plane
    through its true position (parallel to the motion plane). Drift at step h: distance between the prediction's
    centre and the anchor, moved by MuJoCo's displacement since the anchor, projected through frame h's camera."""
    ep, k, h = paired.episodes, paired.context, paired.horizon
    pp = parse(np.concatenate([ep.frames[:, k - 1:k], paired.prediction], 1), colours)  # anchor, then H steps
    pt = parse(ep.frames[:, k - 1:k + h], colours)
    ok = trusted(ep.visible[:, k - 1:k + h], pt.border, ep.active[:, None, :])
    pos = ep.object_pos[:, k - 1:k + h]
    anchor = backproject(pp.centre[:, 0], ep.intrinsics[:, k - 1, None], ep.extrinsics[:, k - 1, None], pos[:, 0],
                         _normal(motion_plane))  # (B, K, 3)
    expected = project(anchor[:, None] + pos[:, 1:] - pos[:, :1], ep.intrinsics[:, k:k + h, None],
                       ep.extrinsics[:, k:k + h, None])  # (B, H, K, 2)
    drift = np.linalg.norm(pp.centre[:, 1:] - expected, axis=-1)  # (B, H, K)
    check = ok[:, 1:] & ok[:, :1]
    drift = np.where(check, drift, np.nan)
    tol = ORBIT_TOLERANCE_PX * _scale(paired.prediction.shape[-2])
    n = check.sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, (check & (drift <= tol)).sum((1, 2)) / n, np.nan)
        lost = np.where(n > 0, (check & ~np.isfinite(drift)).sum((1, 2)) / n, np.nan)
    with _quiet():
        per_step = np.nanmean(drift, 2)
        mean = np.nanmean(drift.reshape(len(drift), -1), 1)
    return {"orbit_pass_rate": rate, "orbit_drift_px": mean, "orbit_missing": lost,
            "orbit_drift_px_per_step": per_step}


# --- push persistence -------------------------------------------------------------------------------------

def scripted_push_episodes(n: int, *, scene: str = "push", seed: int = 0, resolution: int = 32,
                           distribution: str = "id", holdout: str | None = None) -> Episodes:
    """Whole scripted-expert episodes of a scene with a pushed object: what push persistence and push contact cut
    their windows from (generated once when both run)."""
    from worldsim.sim.registry import get_scene

    spec = get_scene(scene).spec
    if spec.reward is None:
        raise ConfigError(f"the push probes need a scene with a pushed object (push), not {scene!r}", field="--probes")
    return fresh_episodes(scene, n, spec.max_frames, distribution=distribution, seed=seed, resolution=resolution,
                          policy="scripted", holdout=holdout)


def _pushed_block(scene: str) -> int:
    from worldsim.sim.registry import get_scene

    spec = get_scene(scene).spec
    return [o.name for o in spec.objects].index(spec.reward.object)


def push_episodes(n: int, context: int, *, horizon: int = PUSH_HORIZON, full: Episodes | None = None, **kw
                  ) -> tuple[Episodes, np.ndarray]:
    """Scripted `push` episodes (`full`, or `scripted_push_episodes(n, **kw)`), each cut to a window of context +
    horizon frames whose rollout ends `PERSIST_FRAMES` frames after the block's last motion; returns the windows and
    a mask of usable episodes (the push ends late enough for a whole window)."""
    full = scripted_push_episodes(n, **kw) if full is None else full
    block = _pushed_block(full.scene)
    speed = np.linalg.norm(np.diff(full.object_pos[:, :, block], axis=1), axis=-1)  # (B, T - 1) m/frame
    length = context + horizon
    starts, usable = np.zeros(len(full), int), np.zeros(len(full), bool)
    for i in range(len(full)):
        moving = np.nonzero(speed[i] > REST_M_PER_FRAME)[0]
        if moving.size:
            rest = moving[-1] + 1  # first frame at rest for good
            s = rest + PERSIST_FRAMES - length
            if 0 <= s and s + length <= full.length:
                starts[i], usable[i] = s, True
    return windows(full, starts, length), usable


def _parsed_block(paired: Paired, colours: np.ndarray, block: int):
    """What both push probes read: MuJoCo's frames from the last context frame on and the prediction, parsed; where
    MuJoCo's block is trusted over the rollout (B, H); and the frame height."""
    ep, k, h = paired.episodes, paired.context, paired.horizon
    pt, pp = parse(ep.frames[:, k - 1:k + h], colours), parse(paired.prediction, colours)
    ok = trusted(ep.visible[:, k:k + h, block], pt.border[:, 1:, block], ep.active[:, None, block])  # (B, H)
    return pt, pp, ok, paired.prediction.shape[-2]


def push_persistence(paired: Paired, colours: np.ndarray, block: int, usable: np.ndarray | None = None
                     ) -> dict[str, np.ndarray]:
    """Per episode (B,): pass rate, error (px, vs the parser on MuJoCo's frame) and lost fraction over the frames
    after the push; NaN for episodes whose block MuJoCo did not move by `MOVED_PX` in the rollout."""
    pt, pp, ok, res = _parsed_block(paired, colours, block)
    k, h = paired.context, paired.horizon
    pos = paired.episodes.object_pos[:, k - 1:k + h, block]
    at_rest = np.linalg.norm(pos[:, 1:] - pos[:, -1:], axis=-1) < REST_M_PER_FRAME  # same place as at the end
    moved = np.linalg.norm(pt.centre[:, -1, block] - pt.centre[:, 0, block], axis=-1) >= MOVED_PX * _scale(res)
    usable = np.ones(len(paired.episodes), bool) if usable is None else usable
    check = ok & at_rest & (moved & usable)[:, None]
    rate, err, lost = _block_checks(pp.centre[:, :, block], pt.centre[:, 1:, block], check, res)
    return {"push_pass_rate": rate, "push_error_px": err, "push_missing": lost}


def _block_checks(pred: np.ndarray, true: np.ndarray, check: np.ndarray, res: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres (B, H, 2) of the prediction's and MuJoCo's block over the checked steps (B, H) -> per episode the pass
    rate (within `PERSIST_TOLERANCE_PX`), the error (px, over steps the prediction shows the block) and the lost
    fraction; NaN where nothing is checked."""
    e = np.where(check, np.linalg.norm(pred - true, axis=-1), np.nan)  # (B, H)
    n = check.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, (check & (e <= PERSIST_TOLERANCE_PX * _scale(res))).sum(1) / n, np.nan)
        lost = np.where(n > 0, (check & np.isnan(e)).sum(1) / n, np.nan)
    with _quiet():
        err = np.nanmean(e, 1)
    return rate, err, lost


def contact_episodes(n: int, context: int, *, full: Episodes | None = None, **kw) -> tuple[Episodes, np.ndarray]:
    """Scripted `push` episodes (`full`, or `scripted_push_episodes(n, **kw)`), each cut to a window of context +
    `CONTACT_HORIZON` frames whose rollout begins on the first frame (after the context) that the pushed block moves
    from rest; returns the windows and a mask of usable episodes (such an onset with a whole window)."""
    full = scripted_push_episodes(n, **kw) if full is None else full
    block = _pushed_block(full.scene)
    moving = np.linalg.norm(np.diff(full.object_pos[:, :, block], axis=1), axis=-1) > REST_M_PER_FRAME  # (B, T-1)
    # frame f is an onset when the block moves from f - 1 to f and did not from f - 2 to f - 1
    onset = np.zeros(full.object_pos.shape[:2], bool)  # (B, T)
    onset[:, 2:] = moving[:, 1:] & ~moving[:, :-1]
    onset[:, :context] = False
    onset[:, full.length - CONTACT_HORIZON + 1:] = False
    usable = onset.any(1)
    starts = np.where(usable, onset.argmax(1) - context, 0)
    return windows(full, starts, context + CONTACT_HORIZON), usable


def push_contact(paired: Paired, colours: np.ndarray, block: int, usable: np.ndarray | None = None
                 ) -> dict[str, np.ndarray]:
    """Per episode (B,): the share of MuJoCo's push reproduced at the last step, and per step the pass rate, error
    (px, vs the parser on MuJoCo's frame) and lost fraction; NaN for episodes whose block MuJoCo did not move by
    `MOVED_PX`."""
    pt, pp, ok, res = _parsed_block(paired, colours, block)
    start = pt.centre[:, 0, block]  # (B, 2) the block at rest in the last context frame
    true = pt.centre[:, -1, block] - start  # (B, 2) MuJoCo's push over the window
    moved = np.linalg.norm(true, axis=-1) >= MOVED_PX * _scale(res)
    usable = np.ones(len(paired.episodes), bool) if usable is None else usable
    keep = moved & usable & ok[:, -1]
    rate, err, lost = _block_checks(pp.centre[:, :, block], pt.centre[:, 1:, block], ok & keep[:, None], res)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = ((pp.centre[:, -1, block] - start) * true).sum(-1) / (true * true).sum(-1)  # NaN where lost
    share = np.where(keep, share, np.nan)
    return {"contact_pass_rate": rate, "contact_error_px": err, "contact_missing": lost, "contact_share": share}


# --- all of them ------------------------------------------------------------------------------------------

@contextmanager
def _quiet():
    """nanmean of an all-NaN row is NaN, silently."""
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def applicable(scene: str) -> list[str]:
    """The consistency probes a scene supports: cuts (≥ 2 cameras), orbit (its first camera moves with the actions),
    push and contact (a pushed object and a scripted expert)."""
    from worldsim.sim.registry import get_scene

    spec = get_scene(scene).spec
    out = ["cuts"] if len(spec.cameras) >= 2 else []
    if scene == "orbit" or spec.cameras[0] == "orbit":
        out.append("orbit")
    if spec.reward is not None and scene == "push":
        out += ["push", "contact"]
    return out


def run(scene: str, predictors: dict, *, n: int, context: int, horizon: int, seed: int = 0, resolution: int = 32,
        distribution: str = "id", batch_size: int = 16, n_resamples: int = 2000, holdout: str | None = None) -> dict:
    """Every applicable consistency probe for every predictor (plus the exact simulator), on the probes' own
    episodes; {probe: {"episodes": n, "checked": episodes with a check, "scores": {predictor: {figure: estimate}}}}."""
    from worldsim.eval.predictor import PerturbedMuJoCo
    from worldsim.eval.stats import bootstrap_mean
    from worldsim.sim.registry import get_scene

    spec = get_scene(scene).spec
    colours = np.array([o.colour for o in spec.objects])
    runs = {"mujoco (exact)": PerturbedMuJoCo(scene, 0.0, 0.0, name="mujoco (exact)"), **predictors}
    out, scripted = {}, None
    for probe in applicable(scene):
        kw = dict(seed=seed, resolution=resolution, distribution=distribution, holdout=holdout)
        usable = None
        if probe == "cuts":
            ep, h = cut_episodes(scene, n, context, horizon, **kw), horizon
        elif probe == "orbit":
            ep, h = fresh_episodes(scene, n, context + horizon, **kw), horizon
        else:  # push and contact cut their windows from the same scripted episodes
            scripted = scripted_push_episodes(n, scene=scene, **kw) if scripted is None else scripted
            cut, h = (push_episodes, PUSH_HORIZON) if probe == "push" else (contact_episodes, CONTACT_HORIZON)
            ep, usable = cut(n, context, full=scripted)
            block = _pushed_block(scene)
        scores, checked = {}, 0
        for name, p in runs.items():
            paired = rollout(p, ep, context, h, seed=seed, batch_size=batch_size)
            if probe == "cuts":
                v = cut_consistency(paired, colours, spec.motion_plane)
            elif probe == "orbit":
                v = orbit_consistency(paired, colours, spec.motion_plane)
            else:
                judge = push_persistence if probe == "push" else push_contact
                v = judge(paired, colours, block, usable)
            checked = int(np.isfinite(next(iter(v.values()))).sum())
            scores[name] = {key: bootstrap_mean(x, n_resamples=n_resamples, seed=seed).to_json()
                            for key, x in v.items()}
        out[probe] = {"episodes": len(ep), "checked": checked, "horizon": h, "scores": scores}
    return out


THRESHOLDS = {"cut_steps": list(CUT_STEPS), "cut_tolerance_px_at_32": CUT_TOLERANCE_PX,
              "orbit_tolerance_px_at_32": ORBIT_TOLERANCE_PX, "persist_frames": PERSIST_FRAMES,
              "push_horizon": PUSH_HORIZON,
              "moved_px_at_32": MOVED_PX, "persist_tolerance_px_at_32": PERSIST_TOLERANCE_PX,
              "rest_m_per_frame": REST_M_PER_FRAME, "contact_horizon": CONTACT_HORIZON}

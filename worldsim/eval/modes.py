"""Generation-mode probes (issue 9, "generation modes"): do Sora's extend-backward, connect, loop and low-resolution
preview hold up against MuJoCo? Each mode is run through `worldsim.rollout.generate` on fresh MuJoCo windows of
`given + made` frames and read back with the colour parser of Kang et al. (2024) (`parse.py`); which object-frames
count is decided from MuJoCo only (`parse.trusted`).

- **extend backward**: the window's last `given` frames are given; the model makes the `made` frames before them.
  Error = distance between each made frame's object centre and the parser's on MuJoCo's frame; a check *passes*
  within `EXTEND_TOLERANCE_PX` (issue 9: 2 px at 32 px); a lost object fails.
- **connect**: the window's first and last `given // 2` frames are given (the same episode, so MuJoCo knows what
  lies between); the model makes the `made` frames between them. Centre error as above; the two *seams* are the
  steps from the last head frame into the made frames and out of them into the first tail frame; `max_step` is the
  largest step anywhere from the last head frame to the first tail frame (a jump inside the bridge).
- **loop**: `made` frames with frames 0 and T-1 tied (`plans.loop`), played as 0 .. T-2 and back to 0; the
  *seam* is the step from frame T-2 to frame 0. MuJoCo's own window played as a loop is the reference that fails.
  Loop and preview make whole videos from the episode's caption (`captions.caption` of its frames up to the
  window's end, as the recorder writes it for training), or the window's own for weights trained on such captions
  (`data.window_captions`); extend backward and connect get the episode's actions in
  actuated scenes.
- **preview**: Sora's "prototype at low resolution": a draft at the largest trained resolution below full size,
  then the full render (SDEdit from the upsampled draft). Error = distance between each object's centre in the
  draft and in the full render, in draft pixels; *passes* within `PREVIEW_TOLERANCE_PX` (issue 9: 1 preview px);
  an object found in one and not the other fails. MuJoCo rendering the same states at both sizes is the floor.

A frame-to-frame *step* is the RMS difference of two frames in 8-bit levels; a seam or bridge *passes* when its
step is at most the `SEAM_PERCENTILE`th percentile of MuJoCo's own steps over the probe's windows (issue 9's
threshold, measured in the same run). A step says nothing about whether the objects are there (an empty box loops
seamlessly), so every mode reports the share of MuJoCo's object-frames the model lost beside it.
"""

from __future__ import annotations

import numpy as np

from worldsim.errors import ConfigError
from worldsim.eval.consistency import _quiet, _scale
from worldsim.eval.paired import Episodes, fresh_episodes
from worldsim.eval.parse import parse, trusted
from worldsim.viz.video import difference

MODES = ("extend_backward", "connect", "loop", "preview")
EXTEND_TOLERANCE_PX = 2.0  # at 32 px (issue 9's target for extend-backward vs MuJoCo); connect uses the same
PREVIEW_TOLERANCE_PX = 1.0  # in preview pixels (issue 9's target)
SEAM_PERCENTILE = 95.0  # of MuJoCo's frame-to-frame steps (issue 9's target)


def step(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 pairs -> (...): the RMS difference of two frames, in 8-bit levels."""
    return np.sqrt(((np.asarray(a, np.float32) - np.asarray(b, np.float32)) ** 2).mean((-3, -2, -1)))


def frame_steps(frames: np.ndarray) -> np.ndarray:
    """(B, T, H, W, 3) uint8 -> (B, T - 1): the step between each pair of consecutive frames."""
    return step(frames[:, 1:], frames[:, :-1])


def centre_checks(made: np.ndarray, ep: Episodes, frames: slice, colours: np.ndarray, tolerance_px: float
                  ) -> dict[str, np.ndarray]:
    """Per episode (B,): pass rate, mean error (px) and lost fraction of the made frames (B, F, H, W, 3) against
    MuJoCo's frames `frames` of `ep`, over the object-frames MuJoCo shows whole; NaN where nothing is checked."""
    pm, pt = parse(made, colours), parse(ep.frames[:, frames], colours)
    check = trusted(ep.visible[:, frames], pt.border, ep.active[:, None, :])              # (B, F, K)
    err = np.where(check, np.linalg.norm(pm.centre - pt.centre, axis=-1), np.nan)
    tol = tolerance_px * _scale(made.shape[-3])
    return _rates(check, err, tol)


def _rates(check: np.ndarray, err: np.ndarray, tol: float) -> dict[str, np.ndarray]:
    n = check.reshape(len(check), -1).sum(1)
    passed = (check & (err <= tol)).reshape(len(check), -1).sum(1)
    lost = (check & np.isnan(err)).reshape(len(check), -1).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"), _quiet():
        return {"pass_rate": np.where(n > 0, passed / n, np.nan), "missing": np.where(n > 0, lost / n, np.nan),
                "error_px": np.nanmean(err.reshape(len(err), -1), 1)}


def preview_checks(draft: np.ndarray, full: np.ndarray, colours: np.ndarray, check: np.ndarray | None = None
                   ) -> dict[str, np.ndarray]:
    """Per episode (B,): draft (B, T, h, w, 3) against full render (B, T, H, W, 3): pass rate, error (draft px)
    and the share of object-frames found in one but not the other. `check` (B, T, K): the object-frames to compare
    (default: those found in either)."""
    pd, pf = parse(draft, colours), parse(full, colours)
    scale = np.array([draft.shape[-2] / full.shape[-2], draft.shape[-3] / full.shape[-3]])  # (u, v) to draft px
    found_d, found_f = pd.pixels > 0, pf.pixels > 0
    check = (found_d | found_f) if check is None else check
    err = np.where(check, np.linalg.norm(pd.centre - pf.centre * scale, axis=-1), np.nan)
    return _rates(check, err, PREVIEW_TOLERANCE_PX)


def _seams(bridge: np.ndarray, p95: float) -> dict[str, np.ndarray]:
    """Per episode: the two seams of a bridge (B, F, H, W, 3) that runs from the last head frame to the first tail
    frame (mean step and share within `p95`), and its largest step anywhere."""
    steps = frame_steps(bridge)                                                          # (B, F - 1)
    seams = steps[:, [0, -1]]
    return {"seam_step": seams.mean(1), "seam_pass": (seams <= p95).mean(1), "max_step": steps.max(1)}


def _no_actions(kw: dict) -> dict:
    """Loop and preview make videos from text alone (no episode frames to align actions with)."""
    return {k: v for k, v in kw.items() if k != "actions"}


def _versus(truth: np.ndarray, made: np.ndarray, name: str, given: np.ndarray) -> dict:
    """A report example: MuJoCo | the model | their difference, with the given frames marked."""
    return {"panels": [truth, made, difference(truth, made)], "labels": ["MuJoCo", name, "|diff|"], "given": given}


def episode_captions(ep: Episodes, start: int, window: bool = False) -> np.ndarray:
    """(B,) the caption of each episode's frames 0 .. the window's end, with its events back in episode frames (what
    weights trained on their episodes' captions saw); with `window`, the window's own caption: the objects at its
    first frame, its events from 0 (what weights trained with `data.window_captions` saw)."""
    from worldsim.sim.captions import caption
    from worldsim.sim.registry import get_scene

    spec = get_scene(ep.scene).spec
    evs = ep.events or [[]] * len(ep)
    if window:  # the window opens on its first frame's camera, as a recorded episode opens on a `shot` event
        shot = {"type": "shot", "frame": 0, "camera": ep.frame_cameras[0] if ep.frame_cameras else ep.camera}
        return np.array([caption(spec, p, [shot, *e], 0, ep.length, object_pos=pos, object_vel=vel)
                         for p, e, pos, vel in zip(ep.params, evs, ep.object_pos, ep.object_vel)], dtype=object)
    return np.array([caption(spec, p, [{**e, "frame": e["frame"] + start} for e in ev], 0, start + ep.length)
                     for p, ev in zip(ep.params, evs)], dtype=object)


def _generate(model, mode: str, ep: Episodes, *, batch_size: int, seed: int, steps: int, sampler: str, **kw
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """`generate` over `ep` in chunks of `batch_size` (chunk c seeded `seed + c`); the made frames and, for
    `preview`, the drafts."""
    from worldsim.rollout.generate import generate

    res = ep.frames.shape[2:4]
    frames, drafts = [], []
    for c, s in enumerate(range(0, len(ep), batch_size)):
        sl = slice(s, s + batch_size)
        given = {k: (list(v[sl]) if v.dtype == object else v[sl]) for k, v in kw.items() if isinstance(v, np.ndarray)}
        rest = {k: v for k, v in kw.items() if not isinstance(v, np.ndarray)}
        g = generate(model, mode, resolution=tuple(res), steps=steps, sampler=sampler, batch=len(ep.frames[sl]),
                     seed=seed + c, cameras=ep.camera, **given, **rest)
        frames.append(g.frames)
        if g.preview is not None:
            drafts.append(g.preview)
    return np.concatenate(frames), (np.concatenate(drafts) if drafts else None)


def run(scene: str, model=None, *, name: str = "model", n: int, given: int, made: int, seed: int = 0, start: int = 0,
        resolution: int = 32, distribution: str = "id", steps: int = 8, sampler: str = "euler",
        batch_size: int = 16, n_resamples: int = 2000, progress: bool = False, examples: dict | None = None,
        which: tuple[str, ...] = MODES) -> dict:
    """Every mode probe on `n` fresh windows of `given + made` frames from episode frame `start`: MuJoCo's
    reference rows and, with a `worldsim.rollout.WorldModel`, the model's (row `name`). {mode: {..., "scores":
    {row: {figure: estimate}}}}. `examples`, if given, is filled with episode 0's videos per mode for the report:
    {mode: {"panels": [(T, h, w, 3), ...], "labels": [...], "given": (T,) bool}}. `which`: the modes to run."""
    from tqdm.auto import tqdm

    from worldsim.eval.stats import bootstrap_mean
    from worldsim.sim.registry import get_scene

    unknown = [m for m in which if m not in MODES]
    if unknown:
        raise ConfigError(f"unknown mode {unknown[0]!r}; modes: {', '.join(MODES)}", field="which")
    if given < 2 or given % 2:
        raise ConfigError(f"the mode probes need an even number of given frames >= 2 (connect splits them between "
                          f"head and tail), got {given}", field="--context")
    spec = get_scene(scene).spec
    colours = np.array([o.colour for o in spec.objects])
    kw = dict(distribution=distribution, seed=seed, start=start)
    ep = fresh_episodes(scene, n, given + made, resolution=resolution, **kw)
    steps_real = frame_steps(ep.frames)                                                   # (B, T - 1)
    p95 = float(np.percentile(steps_real, SEAM_PERCENTILE))
    est = {}

    def put(mode: str, row: str, figures: dict[str, np.ndarray]) -> None:
        est.setdefault(mode, {})[row] = {k: bootstrap_mean(np.asarray(v, float), n_resamples=n_resamples,
                                                           seed=seed).to_json() for k, v in figures.items()}

    h = given // 2
    # MuJoCo's own rows: what the parser reads off the truth, and the naive references that fail.
    put("extend_backward", "mujoco (exact)", centre_checks(ep.frames[:, :made], ep, slice(0, made), colours,
                                                           EXTEND_TOLERANCE_PX))
    copy_first = np.repeat(ep.frames[:, made:made + 1], made, 1)
    put("extend_backward", "copy-first (the first given frame)", centre_checks(
        copy_first, ep, slice(0, made), colours, EXTEND_TOLERANCE_PX))
    nearest = np.concatenate([np.repeat(ep.frames[:, h - 1:h], (made + 1) // 2, 1),
                              np.repeat(ep.frames[:, h + made:h + made + 1], made // 2, 1)], 1)
    for row, m in (("mujoco (exact)", ep.frames[:, h:h + made]), ("nearest given frame", nearest)):
        put("connect", row, {**centre_checks(m, ep, slice(h, h + made), colours, EXTEND_TOLERANCE_PX),
                             **_seams(np.concatenate([ep.frames[:, h - 1:h], m, ep.frames[:, h + made:h + made + 1]],
                                                     1), p95)})
    seam_real = step(ep.frames[:, -1], ep.frames[:, 0])
    shown_real = (parse(ep.frames[:, :made], colours).pixels > 0).mean((1, 2))  # what the videos should show
    put("loop", "mujoco window played as a loop", {"seam_step": seam_real, "seam_pass": (seam_real <= p95) * 1.0,
                                                   "own_median_step": np.median(steps_real, 1),
                                                   "objects_shown": shown_real})
    lo = (resolution // 2, resolution // 2) if resolution % 2 == 0 else None  # the draft: half size
    if lo is not None and "preview" in which:
        ep_lo = fresh_episodes(scene, n, made, resolution=lo, **kw)
        pt = parse(ep.frames[:, :made], colours)
        ok = trusted(ep.visible[:, :made], pt.border, ep.active[:, None, :])
        put("preview", f"mujoco ({lo[0]}x{lo[1]} vs {resolution}x{resolution} render)",
            {**preview_checks(ep_lo.frames, ep.frames[:, :made], colours, ok), "objects_shown": shown_real})

    if model is not None:
        # each episode's own scene parameters, for weights conditioned on them (others ignore them)
        g = dict(batch_size=batch_size, seed=seed, steps=steps, sampler=sampler, params=np.array(ep.params, object))
        texts = episode_captions(ep, start, window=model.scene.window_captions)
        if ep.actions.shape[-1]:  # actuated scenes: the true actions, each on the frame it moved to (rollout's rule)
            g["actions"] = np.concatenate([np.zeros_like(ep.actions[:, :1]), ep.actions], 1)   # (B, T, A)
        # a model not trained at the draft's size has no preview row (the reason is in the mode's "note")
        previews = lo is not None and tuple(lo) in {tuple(r) for r in model.scene.resolutions}
        todo = [m for m in which if m != "preview" or previews]
        window = np.arange(given + made)
        for mode in tqdm(todo, desc="generation modes", unit="mode", disable=not progress):
            if mode == "extend_backward":
                out, _ = _generate(model, mode, ep, frames=given + made, clip=ep.frames[:, made:], **g)
                put(mode, name, centre_checks(out[:, :made], ep, slice(0, made), colours, EXTEND_TOLERANCE_PX))
                example = _versus(ep.frames[0], out[0], name, window >= made)
            elif mode == "connect":
                out, _ = _generate(model, mode, ep, frames=given + made, head=ep.frames[:, :h],
                                   tail=ep.frames[:, h + made:], **g)
                put(mode, name, {**centre_checks(out[:, h:h + made], ep, slice(h, h + made), colours,
                                                 EXTEND_TOLERANCE_PX), **_seams(out[:, h - 1:h + made + 1], p95)})
                example = _versus(ep.frames[0], out[0], name, (window < h) | (window >= h + made))
            elif mode == "loop":
                out, _ = _generate(model, mode, ep, frames=made, caption=texts, **_no_actions(g))
                seam = step(out[:, -2], out[:, 0])
                found = parse(out, colours).pixels > 0                                   # (B, T, K)
                put(mode, name, {"seam_step": seam, "seam_pass": (seam <= p95) * 1.0,
                                 "own_median_step": np.median(frame_steps(out[:, :-1]), 1),
                                 "objects_shown": found.mean((1, 2))})
                twice = np.concatenate([out[0, :-1], out[0, :-1]])  # played twice: the seam is in the middle
                example = {"panels": [twice], "labels": [f"{name}, looped twice"], "given": np.zeros(len(twice), bool)}
            else:
                out, draft = _generate(model, mode, ep, frames=made, caption=texts, preview_resolution=lo,
                                       **_no_actions(g))
                put(mode, name, {**preview_checks(draft, out, colours),
                                 "objects_shown": (parse(out, colours).pixels > 0).mean((1, 2))})
                example = {"panels": [draft[0], out[0]], "labels": [f"draft {lo[0]}x{lo[1]}", "full render"],
                           "given": np.zeros(made, bool)}
            if examples is not None:
                examples[mode] = example
    meta = {"extend_backward": {"given": given, "made": made, "tolerance_px_at_32": EXTEND_TOLERANCE_PX},
            "connect": {"head": h, "tail": h, "made": made, "tolerance_px_at_32": EXTEND_TOLERANCE_PX,
                        "mujoco_step_p95": p95},
            "loop": {"frames": made, "mujoco_step_p95": p95},
            "preview": {"frames": made, "draft": list(lo) if lo else None, "full": [resolution, resolution],
                        "tolerance_draft_px": PREVIEW_TOLERANCE_PX}}
    if model is not None and lo is not None and not previews:
        meta["preview"]["note"] = f"the model was not trained at {lo[0]}x{lo[1]}: no preview row"
    return {mode: {**meta[mode], "episodes": n, "scores": est[mode]} for mode in which if mode in est}


THRESHOLDS = {"extend_tolerance_px_at_32": EXTEND_TOLERANCE_PX, "preview_tolerance_draft_px": PREVIEW_TOLERANCE_PX,
              "seam_percentile": SEAM_PERCENTILE}

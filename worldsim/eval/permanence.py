"""Object-permanence probes (issue 8, item 3): do objects persist, unchanged, through occlusion? (IntPhys, Sora's
"objects persist when occluded" claim; `occlusion` scene, run with `--start 14` so the rollout spans the occlusion.)

All decisions about *when* come from MuJoCo: its `emerged` events (an object hidden behind scenery is seen again,
sim/events.py), its visible fractions, and the parser on its frames. The prediction is read with the same parser.
Objects count as *shown* in a frame when at least `MIN_OBJECT_PIXELS` pixels match their colour (one stray pixel of
a generated frame is not an object).

| figure                 | definition                                                                                 |
|------------------------|--------------------------------------------------------------------------------------------|
| re-emergence rate      | MuJoCo `emerged` events in the rollout whose object the prediction shows, within           |
|                        | `REEMERGE_RADII` object radii of MuJoCo's centre, at the first frame from the event on at  |
|                        | which MuJoCo shows it fully (`parse.trusted`); radius = sqrt(MuJoCo's pixel count / pi)    |
| error after re-emergence | centre error (px, vs the parser on MuJoCo's frame) over trusted frames after an emergence  |
| colour kept            | trusted frames after an emergence where the prediction's mean colour inside MuJoCo's mask  |
|                        | of the object lies within `PARSE_DISTANCE` of the object's colour                          |
| count conserved        | rollout frames where the prediction shows as many objects as MuJoCo's frame does           |
| spontaneous appearances| object-frames where MuJoCo shows none of an object, and the prediction shows it although it |
|                        | did not in its previous frame (the last context frame for the first step): fraction of     |
|                        | MuJoCo's object-absent frames (an object that merely fails to hide is not an appearance)    |
Each is a fraction (or px) per episode, NaN where the episode has no such frame or event; intervals over episodes.
"""

from __future__ import annotations

import numpy as np

from worldsim.eval.paired import Paired
from worldsim.eval.parse import PARSE_DISTANCE, colour_masks, parse, trusted

MIN_OBJECT_PIXELS = 2
REEMERGE_RADII = 2.0


def permanence(paired: Paired, colours: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Per-episode permanence figures, each (B,)."""
    ep, k, h = paired.episodes, paired.context, paired.horizon
    truth, pred = paired.truth, paired.prediction
    pt, pp = parse(truth, colours), parse(pred, colours)
    ok = trusted(ep.visible[:, k:k + h], pt.border, ep.active[:, None, :])  # (B, H, K)
    shown_t, shown_p = pt.pixels >= MIN_OBJECT_PIXELS, pp.pixels >= MIN_OBJECT_PIXELS
    masks = colour_masks(truth, colours)  # (B, H, K, h, w) MuJoCo's object masks
    last_shown = parse(ep.frames[:, k - 1], colours).pixels >= MIN_OBJECT_PIXELS  # (B, K) in the last context frame
    b = len(truth)
    out = {key: np.full(b, np.nan) for key in ("reemergence_rate", "error_after_reemergence_px", "colour_kept",
                                                "count_conserved", "spontaneous_appearance")}
    for i in range(b):
        hits, errors, kept = [], [], []
        for e in ep.events[i]:
            if e["type"] != "emerged" or not (k <= e["frame"] < k + h):
                continue
            o = names.index(e["object"])
            steps = [s for s in range(e["frame"] - k, h) if ok[i, s, o]]
            if not steps:
                continue
            s0 = steps[0]
            radius = np.sqrt(pt.pixels[i, s0, o] / np.pi)
            near = np.linalg.norm(pp.centre[i, s0, o] - pt.centre[i, s0, o]) <= REEMERGE_RADII * radius
            hits.append(float(shown_p[i, s0, o] and near))
            for s in steps:
                if shown_p[i, s, o]:
                    errors.append(float(np.linalg.norm(pp.centre[i, s, o] - pt.centre[i, s, o])))
                m = masks[i, s, o]
                mean = pred[i, s][m].astype(np.float64).mean(0)
                kept.append(float(np.linalg.norm(mean - colours[o]) <= PARSE_DISTANCE))
        if hits:
            out["reemergence_rate"][i] = np.mean(hits)
        if errors:
            out["error_after_reemergence_px"][i] = np.mean(errors)
        if kept:
            out["colour_kept"][i] = np.mean(kept)
        out["count_conserved"][i] = np.mean(shown_t[i].sum(-1) == shown_p[i].sum(-1))
        absent = pt.pixels[i] == 0  # (H, K) MuJoCo shows none of the object
        before = np.concatenate([last_shown[i][None], shown_p[i][:-1]], 0)  # the prediction's previous frame
        if absent.any():
            out["spontaneous_appearance"][i] = np.mean((shown_p[i] & ~before)[absent])
    return out

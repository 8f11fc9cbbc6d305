"""Per-episode, per-horizon-step metrics of a paired rollout (frames are `B T H W C` uint8).

Image metrics (torchmetrics): PSNR (data range 255, capped at `PSNR_CAP_DB` so identical frames give a finite
number) and SSIM (Gaussian window 11, sigma 1.5, as in Wang et al. 2004), each over the whole frame and over the
*moving pixels*: pixels where MuJoCo's frame or the predicted frame differs from the last context frame by more than
`MOTION_DISTANCE` (so both missed and invented motion count; frames with no moving pixel give NaN, left out).

Object metrics (Kang et al. 2024; parser in `parse.py`): per object and step, the parsed centre of the predicted
frame against (a) the parsed centre of MuJoCo's frame (`*_vs_mujoco`: zero for a perfect video) and (b) the
simulator's state projected through the true camera (`*_vs_state`, Kang's definition); the parser run on MuJoCo's
frames against the state is the floor (`*_floor`). Velocities are forward differences (px/frame); the first uses
the last context frame. Scene units: centres lifted through the true camera onto the motion plane through the
object's true position (m, and m/s for velocities). Errors are Euclidean norms, averaged over the trusted objects
of a step (`parse.trusted`); an object the prediction lost (no pixel of its colour) is left out of the error and
counted in `missing`.

Physics-IQ (Motamed et al. 2025): motion masks (pixels whose colour moved by more than `MOTION_DISTANCE` since the
previous frame), then spatial IoU (masks OR-ed over time), spatiotemporal IoU (per-frame IoU, averaged), weighted
spatial IoU (per-pixel fraction of moving frames; sum of minima over sum of maxima) and MSE (frames in [0, 1]);
empty unions count as 1, as in the benchmark's code. The score is
    100% x [ mean over the three IoUs of (model IoU / variance IoU) - (model MSE - variance MSE) ], clipped to 0..100,
from dataset means, where "variance" compares MuJoCo with a second MuJoCo take from a barely perturbed state.
Variance IoUs below `IOU_VARIANCE_FLOOR` are raised to it (near-zero denominators), and the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from einops import rearrange
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from worldsim.eval.paired import Paired
from worldsim.eval.parse import PARSE_DISTANCE, backproject, parse, trusted
from worldsim.sim.spec import MOTION_PLANES

PSNR_CAP_DB = 100.0  # above any pair of different uint8 frames up to 4096 x 4096 px... at 32 px one level is 83 dB
MOTION_DISTANCE = PARSE_DISTANCE  # 40 levels (Euclidean RGB): MuJoCo's frames are noise-free, objects differ by >= 80
IOU_VARIANCE_FLOOR = 0.05


def _torch(frames: np.ndarray) -> torch.Tensor:
    return rearrange(torch.from_numpy(np.ascontiguousarray(frames)).float(), "b t h w c -> (b t) c h w")


def psnr(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(B, T, H, W, 3) x2 -> (B, T) PSNR in dB, capped at PSNR_CAP_DB."""
    b, t = pred.shape[:2]
    p, g = _torch(pred), _torch(truth)
    mse = ((p - g) ** 2).mean((1, 2, 3))
    val = peak_signal_noise_ratio(p, g, data_range=255.0, reduction="none", dim=(1, 2, 3))
    val = torch.where(mse == 0, torch.full_like(val, PSNR_CAP_DB), val.clamp(max=PSNR_CAP_DB))
    return val.reshape(b, t).numpy().astype(np.float64)


def ssim_map(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(B, T, H, W, 3) x2 -> (B, T, H, W) SSIM map (mean over channels)."""
    b, t = pred.shape[:2]
    _, full = structural_similarity_index_measure(_torch(pred), _torch(truth), data_range=255.0, reduction="none",
                                                  return_full_image=True)
    return rearrange(full.mean(1), "(b t) h w -> b t h w", b=b, t=t).numpy().astype(np.float64)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((a.astype(np.float64) - b.astype(np.float64)) ** 2).sum(-1))


def moving_pixels(pred: np.ndarray, truth: np.ndarray, last_context: np.ndarray) -> np.ndarray:
    """(B, T, H, W) bool: pixels where the truth or the prediction moved away from the last context frame."""
    ref = last_context[:, None]
    return (_distance(truth, ref) > MOTION_DISTANCE) | (_distance(pred, ref) > MOTION_DISTANCE)


def image_metrics(paired: Paired) -> dict[str, np.ndarray]:
    """PSNR and SSIM per episode and step, whole frame and moving pixels only. Each value is (B, H)."""
    pred, truth = paired.prediction, paired.truth
    last = paired.episodes.frames[:, paired.context - 1]
    moving = moving_pixels(pred, truth, last)
    n = moving.sum((2, 3))
    sq = ((pred.astype(np.float64) - truth.astype(np.float64)) ** 2).mean(-1)  # (B, T, H, W)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse_moving = (sq * moving).sum((2, 3)) / n
        psnr_moving = np.where(mse_moving == 0, PSNR_CAP_DB, np.minimum(10 * np.log10(255.0**2 / mse_moving), PSNR_CAP_DB))
    psnr_moving[n == 0] = np.nan
    smap = ssim_map(pred, truth)
    with np.errstate(invalid="ignore", divide="ignore"):
        ssim_moving = (smap * moving).sum((2, 3)) / n
    ssim_moving[n == 0] = np.nan
    return {"psnr": psnr(pred, truth), "ssim": smap.mean((2, 3)), "psnr_moving": psnr_moving,
            "ssim_moving": ssim_moving, "moving_fraction": moving.mean((2, 3))}


def project(points: np.ndarray, k: np.ndarray, world_to_cam: np.ndarray) -> np.ndarray:
    """Batched pinhole projection (as `worldsim.sim.camera.project`): points (..., K, 3), k (..., 3, 3),
    world_to_cam (..., 4, 4) -> (..., K, 2) px."""
    p = np.einsum("...ij,...kj->...ki", world_to_cam[..., :3, :3], points) + world_to_cam[..., None, :3, 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        uv = p[..., :2] / np.where(p[..., 2:3] > 0, p[..., 2:3], np.nan)
    f = np.stack([k[..., 0, 0], k[..., 1, 1]], -1)[..., None, :]
    return uv * f + k[..., None, :2, 2]


def _nanmean_objects(err: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """(B, T, K) errors and validity -> (B, T) mean over valid objects (NaN where none)."""
    e = np.where(ok, err, 0.0)
    n = ok.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, e.sum(-1) / np.maximum(n, 1), np.nan)


@dataclass
class Tracks:
    """Object tracks over a rollout window (the last context frame and the H rollout frames: T = H + 1)."""

    state: np.ndarray  # (B, T, K, 3) true world positions, m
    state_px: np.ndarray  # (B, T, K, 2) true positions projected through the true camera
    mujoco_px: np.ndarray  # (B, T, K, 2) parsed from MuJoCo's frames (NaN where absent)
    model_px: np.ndarray  # (B, T, K, 2) parsed from the predicted frames (the last context frame is MuJoCo's)
    mujoco: np.ndarray  # (B, T, K, 3) MuJoCo parse lifted onto the motion plane through the true position, m
    model: np.ndarray  # (B, T, K, 3) prediction parse lifted likewise, m
    trusted: np.ndarray  # (B, T, K) object-frames that can be measured (parse.trusted, from MuJoCo only)
    found: np.ndarray  # (B, T, K) the prediction shows the object's colour
    first_frame: int  # episode frame index of window frame 0 (k - 1)
    plane_normal: np.ndarray  # (3,) the motion plane's normal (a world axis)


def tracks(paired: Paired, colours: np.ndarray, motion_plane: str) -> Tracks:
    """Parse MuJoCo's and the predicted frames and lift both into scene units (see the module docstring)."""
    ep, k, h = paired.episodes, paired.context, paired.horizon
    win = slice(k - 1, k + h)
    pred_frames = np.concatenate([ep.frames[:, k - 1:k], paired.prediction], axis=1)
    pt, pp = parse(ep.frames[:, win], colours), parse(pred_frames, colours)
    ok = trusted(ep.visible[:, win], pt.border, ep.active[:, None, :])
    kk, ee = ep.intrinsics[:, win], ep.extrinsics[:, win]
    normal = np.eye(3)[[ax for ax in range(3) if ax not in MOTION_PLANES[motion_plane]][0]]
    state = ep.object_pos[:, win]

    def lift(uv):
        return backproject(uv, kk[:, :, None], ee[:, :, None], state, normal)

    return Tracks(state, project(state, kk, ee), pt.centre, pp.centre, lift(pt.centre), lift(pp.centre), ok,
                  pp.pixels > 0, k - 1, normal)


def object_metrics(paired: Paired, colours: np.ndarray, motion_plane: str) -> dict[str, np.ndarray]:
    """Kang et al.'s centre and velocity errors per episode and step, each (B, H). See the module docstring."""
    tr = tracks(paired, colours, motion_plane)
    ok, fps = tr.trusted, paired.episodes.fps
    okp = ok & tr.found
    out: dict[str, np.ndarray] = {}
    for name, a, b, mask in (("position_px_vs_mujoco", tr.model_px, tr.mujoco_px, okp),
                             ("position_px_vs_state", tr.model_px, tr.state_px, okp),
                             ("position_px_floor", tr.mujoco_px, tr.state_px, ok),
                             ("position_m_vs_mujoco", tr.model, tr.mujoco, okp),
                             ("position_m_vs_state", tr.model, tr.state, okp),
                             ("position_m_floor", tr.mujoco, tr.state, ok)):
        out[name] = _nanmean_objects(np.linalg.norm(a - b, axis=-1), mask)[:, 1:]
    okv, okvp = ok[:, 1:] & ok[:, :-1], okp[:, 1:] & okp[:, :-1]
    d = np.diff
    for name, a, b, mask, scale in (("velocity_px_vs_mujoco", tr.model_px, tr.mujoco_px, okvp, 1.0),
                                    ("velocity_px_vs_state", tr.model_px, tr.state_px, okvp, 1.0),
                                    ("velocity_px_floor", tr.mujoco_px, tr.state_px, okv, 1.0),
                                    ("velocity_mps_vs_mujoco", tr.model, tr.mujoco, okvp, fps),
                                    ("velocity_mps_vs_state", tr.model, tr.state, okvp, fps),
                                    ("velocity_mps_floor", tr.mujoco, tr.state, okv, fps)):
        out[name] = _nanmean_objects(np.linalg.norm(d(a, axis=1) - d(b, axis=1), axis=-1) * scale, mask)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_ok = ok[:, 1:].sum(-1)
        out["missing"] = np.where(n_ok > 0, (ok & ~tr.found)[:, 1:].sum(-1) / np.maximum(n_ok, 1), np.nan)
    return out


# --- Physics-IQ ---------------------------------------------------------------------------------------------

def motion_masks(frames: np.ndarray) -> np.ndarray:
    """(B, T + 1, H, W, 3) -> (B, T, H, W) bool: pixels that moved since the previous frame."""
    return _distance(frames[:, 1:], frames[:, :-1]) > MOTION_DISTANCE


def _iou(a: np.ndarray, b: np.ndarray, axes) -> np.ndarray:
    inter = (a & b).sum(axes)
    union = (a | b).sum(axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def physics_iq_parts(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """Physics-IQ's four metrics between two videos (B, T + 1, H, W, 3) that share frame 0 (the last context frame):
    each (B,) over the T continued frames, plus `mse_step` (B, T)."""
    ma, mb = motion_masks(a), motion_masks(b)
    wa, wb = ma.mean(1), mb.mean(1)
    inter, union = np.minimum(wa, wb).sum((1, 2)), np.maximum(wa, wb).sum((1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        weighted = np.where(union > 0, inter / np.maximum(union, 1e-12), 1.0)
    mse_step = (((a[:, 1:].astype(np.float64) - b[:, 1:].astype(np.float64)) / 255.0) ** 2).mean((2, 3, 4))
    return {"spatial_iou": _iou(ma.any(1), mb.any(1), (1, 2)),
            "spatiotemporal_iou": _iou(ma, mb, (2, 3)).mean(1),
            "weighted_spatial_iou": weighted,
            "mse": mse_step.mean(1), "mse_step": mse_step}


IQ_IOUS = ("spatial_iou", "spatiotemporal_iou", "weighted_spatial_iou")


def physics_iq_score(model: dict[str, np.ndarray], variance: dict[str, np.ndarray]) -> dict[str, float]:
    """The Physics-IQ score (0-100%) from per-episode parts of the model and of the physical variance.

    Returns the clipped score, the unclipped one, each normalised term, and whether a variance IoU was floored."""
    out: dict[str, float] = {}
    ratios = []
    for name in IQ_IOUS:
        var = float(np.mean(variance[name]))
        out[f"{name}_floored"] = var < IOU_VARIANCE_FLOOR
        ratio = float(np.mean(model[name])) / max(var, IOU_VARIANCE_FLOOR)
        out[f"{name}_normalised"] = ratio
        ratios.append(ratio)
    mse_term = float(np.mean(model["mse"]) - np.mean(variance["mse"]))
    out["mse_excess"] = mse_term
    raw = 100.0 * (float(np.mean(ratios)) - mse_term)
    out["score_unclipped"] = raw
    out["score"] = float(np.clip(raw, 0.0, 100.0))
    return out

"""Metrics, parser, baselines and statistics of worldsim.eval on known inputs (issue 8, "Must show")."""

from __future__ import annotations

import numpy as np
import pytest

from worldsim.eval import metrics as M
from worldsim.eval.paired import Paired, fresh_episodes, rollout
from worldsim.eval.parse import backproject, colour_masks, parse, trusted
from worldsim.eval.predictor import CopyLast, LinearExtrapolation, PerturbedMuJoCo, Predictor
from worldsim.eval.stats import bootstrap, bootstrap_mean
from worldsim.sim.registry import get_scene

K, H = 3, 8
COLOURS = np.array([o.colour for o in get_scene("bounce").spec.objects])


@pytest.fixture(scope="module")
def episodes():
    return fresh_episodes("bounce", 6, K + H, resolution=32, seed=3)


def _shift(frames: np.ndarray, du: int) -> np.ndarray:
    """Shift frame content du px to the right (the scenery wraps; objects stay inside the walls in bounce)."""
    return np.roll(frames, du, axis=-2)


def test_identical_videos_give_zero_error_and_100_percent(episodes):
    truth = episodes.frames[:, K:K + H]
    paired = Paired(episodes, K, truth.copy())
    im = M.image_metrics(paired)
    assert np.all(im["psnr"] == M.PSNR_CAP_DB)
    assert np.allclose(im["ssim"], 1.0)
    moving = im["psnr_moving"][np.isfinite(im["psnr_moving"])]
    assert moving.size > 0 and np.all(moving == M.PSNR_CAP_DB)
    om = M.object_metrics(paired, COLOURS, "xz")
    for name in ("position_px_vs_mujoco", "position_m_vs_mujoco", "velocity_px_vs_mujoco", "velocity_mps_vs_mujoco"):
        v = om[name][np.isfinite(om[name])]
        assert v.size > 0 and np.all(v == 0), name
    assert np.all(om["missing"][np.isfinite(om["missing"])] == 0)
    # with the truth as the prediction, "vs state" is exactly the parser floor
    assert np.array_equal(om["position_px_vs_state"], om["position_px_floor"], equal_nan=True)
    window = episodes.frames[:, K - 1:K + H]
    parts = M.physics_iq_parts(window, window.copy())
    for name in M.IQ_IOUS:
        assert np.all(parts[name] == 1.0)
    assert np.all(parts["mse"] == 0)
    # against any physical variance of MuJoCo takes, a perfect video scores 100%
    take2 = rollout(PerturbedMuJoCo("bounce"), episodes, K, H, seed=1).prediction
    variance = M.physics_iq_parts(window, np.concatenate([window[:, :1], take2], 1))
    assert M.physics_iq_score(parts, variance)["score"] == 100.0


def test_exact_simulator_reproduces_mujoco_bit_for_bit(episodes):
    paired = rollout(PerturbedMuJoCo("bounce", sigma_pos=0.0, sigma_vel=0.0), episodes, K, H)
    assert np.array_equal(paired.prediction, paired.truth)


def test_perturbed_take_is_close_but_not_identical(episodes):
    paired = rollout(PerturbedMuJoCo("bounce"), episodes, K, H, seed=5)
    om = M.object_metrics(paired, COLOURS, "xz")
    first = om["position_m_vs_mujoco"][:, 0]
    assert np.nanmax(first) < 0.02  # 1 mm perturbations move the first frame's parsed centres by < 2 cm
    assert np.all(M.image_metrics(paired)["psnr"][:, 0] > 30)


def test_video_shifted_by_3px_gives_3px_centroid_error(episodes):
    truth = episodes.frames[:, K:K + H]
    paired = Paired(episodes, K, _shift(truth, 3))
    om = M.object_metrics(paired, COLOURS, "xz")
    # steps where every object stays 3 px away from the right edge (np.roll wraps pixels past it)
    cols = colour_masks(truth, COLOURS).any(-2)  # (B, H, K, W) columns holding each object
    inside = ~cols[..., -4:].any((-1, -2))  # (B, H)
    pos = om["position_px_vs_mujoco"]
    sel = inside & np.isfinite(pos)
    assert sel.sum() >= 20
    np.testing.assert_allclose(pos[sel], 3.0, atol=1e-9)
    # velocities: the jump from the (unshifted) last context frame is 3 px/frame, afterwards the shift cancels
    vel = om["velocity_px_vs_mujoco"]
    both = sel[:, 1:] & sel[:, :-1] & np.isfinite(vel[:, 1:])
    np.testing.assert_allclose(vel[:, 0][sel[:, 0]], 3.0, atol=1e-9)
    assert both.sum() >= 10
    np.testing.assert_allclose(vel[:, 1:][both], 0.0, atol=1e-9)
    # in scene units, 3 px at the depth of the motion plane (front camera 4 m away): 3 * 4 / f metres
    f = episodes.intrinsics[0, 0, 0, 0]
    pm = om["position_m_vs_mujoco"]
    np.testing.assert_allclose(pm[sel], 3 * 4.0 / f, rtol=1e-9)


def test_parser_on_mujoco_frames_agrees_with_projected_positions_within_1px():
    ep = fresh_episodes("bounce", 8, 12, resolution=32, seed=11)
    p = parse(ep.frames, COLOURS)
    ok = trusted(ep.visible, p.border, ep.active[:, None, :])
    assert ok.sum() >= 100
    proj = M.project(ep.object_pos, ep.intrinsics, ep.extrinsics)
    err = np.linalg.norm(p.centre - proj, axis=-1)[ok]
    assert err.max() < 1.0, err.max()
    # and the colour parser reads exactly MuJoCo's segmentation centroid wherever an object is fully visible
    np.testing.assert_allclose(p.centre[ok], ep.centroid[ok], atol=1e-9)


def test_partly_hidden_objects_are_excluded():
    visible = np.array([1.0, 0.5, 1.0, 1.0])
    border = np.array([False, False, True, False])
    active = np.array([True, True, True, False])
    assert trusted(visible, border, active).tolist() == [True, False, False, False]


def test_backproject_inverts_project():
    ep = fresh_episodes("bounce", 1, 2, resolution=32, seed=0)
    kk, ee = ep.intrinsics[0, 0], ep.extrinsics[0, 0]
    rng = np.random.default_rng(0)
    pts = np.stack([rng.uniform(-1, 1, 20), np.zeros(20), rng.uniform(0, 2, 20)], -1)
    uv = M.project(pts[None], kk[None], ee[None])[0]
    back = backproject(uv, kk, ee, pts, np.array([0.0, 1.0, 0.0]))
    np.testing.assert_allclose(back, pts, atol=1e-9)


def test_psnr_and_ssim_on_known_frames():
    a = np.full((1, 2, 16, 16, 3), 100, np.uint8)
    b = a + 1  # every value one level off: MSE 1 -> PSNR 20 log10(255)
    np.testing.assert_allclose(M.psnr(a, b), 20 * np.log10(255.0), rtol=1e-5)
    np.testing.assert_allclose(M.psnr(a, a), M.PSNR_CAP_DB)
    noise = np.random.default_rng(0).integers(0, 256, a.shape, dtype=np.uint8)
    assert M.ssim_map(a, a).min() > 0.999
    assert M.ssim_map(a, noise).mean() < 0.2


def test_moving_pixel_metrics_only_see_moving_pixels():
    """A prediction that is off (by less than the motion threshold) only where nothing moves keeps a perfect
    moving-pixel PSNR, while its whole-frame PSNR drops."""
    ep = fresh_episodes("bounce", 2, K + H, resolution=32, seed=4)
    truth = ep.frames[:, K:K + H]
    pred = truth.copy()
    moving = M.moving_pixels(truth, truth, ep.frames[:, K - 1])
    assert moving.any()
    still = pred[~moving].astype(np.int16)
    pred[~moving] = np.where(still >= 20, still - 20, still + 20).astype(np.uint8)  # 34.6 < 40 levels: not motion
    im = M.image_metrics(Paired(ep, K, pred))
    finite = np.isfinite(im["psnr_moving"])
    assert finite.any() and np.all(im["psnr_moving"][finite] == M.PSNR_CAP_DB)
    assert np.all(im["psnr"] < 30)


def test_physics_iq_parts_on_known_masks():
    base = np.zeros((1, 3, 8, 8, 3), np.uint8)
    a, b = base.copy(), base.copy()
    a[0, 1:, 0, 0] = 255  # a moves at pixel (0, 0) in frame 1
    b[0, 1:, 7, 7] = 255  # b moves elsewhere
    p = M.physics_iq_parts(a, b)
    assert p["spatial_iou"][0] == 0 and p["weighted_spatial_iou"][0] == 0
    # frame 1: disjoint masks (IoU 0); frame 2: nothing moves in either (IoU 1, as in Physics-IQ's code)
    assert p["spatiotemporal_iou"][0] == pytest.approx(0.5)
    still = M.physics_iq_parts(base, base)
    assert still["spatial_iou"][0] == 1 and still["weighted_spatial_iou"][0] == 1


def test_physics_iq_score_guards_near_zero_variance():
    model = {"spatial_iou": np.array([0.5]), "spatiotemporal_iou": np.array([0.5]),
             "weighted_spatial_iou": np.array([0.5]), "mse": np.array([0.0])}
    variance = {**{k: np.array([1e-9]) for k in M.IQ_IOUS}, "mse": np.array([0.0])}
    out = M.physics_iq_score(model, variance)
    assert out["spatial_iou_floored"] and out["spatial_iou_normalised"] == pytest.approx(0.5 / M.IOU_VARIANCE_FLOOR)
    assert np.isfinite(out["score_unclipped"]) and out["score"] == 100.0
    half = M.physics_iq_score(model, {**{k: np.array([1.0]) for k in M.IQ_IOUS}, "mse": np.array([0.0])})
    assert half["score"] == pytest.approx(50.0) and not half["spatial_iou_floored"]


def test_copy_last_repeats_the_last_context_frame(episodes):
    paired = rollout(CopyLast(), episodes, K, H)
    assert np.array_equal(paired.prediction, np.repeat(episodes.frames[:, K - 1:K], H, 1))
    assert isinstance(CopyLast(), Predictor)


def test_linear_extrapolation_is_exact_for_a_square_at_constant_velocity():
    cols = np.array([[220, 40, 40], [40, 170, 60]])
    bg = np.array([200, 200, 190], np.uint8)
    t_total = 7
    video = np.empty((1, t_total, 24, 40, 3), np.uint8)
    for t in range(t_total):
        f = np.broadcast_to(bg, (24, 40, 3)).copy()
        f[4:8, 2 + 2 * t:6 + 2 * t] = cols[0]  # red moves +2 px/frame in u
        f[14 + t:17 + t, 30:33] = cols[1]  # green moves +1 px/frame in v
        video[0, t] = f
    pred = LinearExtrapolation(cols).predict(video[:, :3], np.zeros((1, 6, 0), np.float32), 4,
                                             conditioning=None, seed=0)
    assert np.array_equal(pred, video[:, 3:])


def test_bootstrap_intervals_cover_the_truth_on_synthetic_data():
    rng = np.random.default_rng(0)
    trials, n, mu = 200, 64, 1.5
    hits = 0
    for s in range(trials):
        x = rng.normal(mu, 2.0, n)
        est = bootstrap_mean(x, n_resamples=500, seed=s)
        assert est.low < est.value < est.high
        hits += est.low <= mu <= est.high
    assert 0.89 <= hits / trials <= 0.99, hits / trials
    # per-step curves: the interval of each step covers that step's truth, and NaN steps stay NaN
    curves = rng.normal(np.arange(4.0), 1.0, (64, 4))
    curves[:, 3] = np.nan
    est = bootstrap_mean(curves, n_resamples=500)
    assert np.all(est.low[:3] <= np.arange(3.0) + 0.5) and np.all(est.high[:3] >= np.arange(3.0) - 0.5)
    assert np.isnan(est.value[3]) and np.isnan(est.low[3])
    # paired statistics resample episodes jointly; the seed makes them reproducible
    a, b = rng.normal(2, 1, 64), rng.normal(4, 1, 64)
    r1 = bootstrap(lambda x, y: x.mean() / y.mean(), a, b, n_resamples=300, seed=1)
    r2 = bootstrap(lambda x, y: x.mean() / y.mean(), a, b, n_resamples=300, seed=1)
    assert r1 == r2 and r1.low < 0.5 < r1.high

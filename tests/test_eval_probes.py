"""Physics-law probes and the violation-of-expectation scorer interface, checked against MuJoCo (issue 8)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from einops import rearrange

from worldsim.eval import physics, voe
from worldsim.eval.metrics import tracks
from worldsim.eval.paired import Paired, fresh_episodes, rollout
from worldsim.eval.predictor import CopyLast
from worldsim.sim.registry import get_scene

K, H = 3, 16


def _probes(scene: str, n: int, predictor=None, seed: int = 0, horizon: int = H):
    spec = get_scene(scene).spec
    ep = fresh_episodes(scene, n, K + horizon, resolution=32, seed=seed)
    paired = Paired(ep, K, ep.frames[:, K:K + horizon]) if predictor is None else rollout(predictor, ep, K, horizon)
    tr = tracks(paired, np.array([o.colour for o in spec.objects]), spec.motion_plane)
    return physics.probe_all(tr, ep, [o.name for o in spec.objects])


def test_gravity_fitted_from_parabola_trajectories():
    res = _probes("parabola", 6)["gravity_ratio"]
    state = res["state"][np.isfinite(res["state"])]
    assert state.size >= 4 and np.allclose(state, 1.0, atol=1e-6)  # MuJoCo's positions obey g exactly
    floor = res["mujoco"][np.isfinite(res["mujoco"])]
    assert abs(np.median(floor) - 1.0) < 0.15  # the parser at 32 px recovers g to within ~15%
    still = _probes("parabola", 3, CopyLast())["gravity_ratio"]["model"]
    assert np.all(np.abs(still[np.isfinite(still)]) < 1e-9)  # a frozen video has no gravity


def test_restitution_at_wall_bounces_is_one_in_mujoco():
    res = _probes("bounce", 16, seed=2)["restitution"]
    state = res["state"][np.isfinite(res["state"])]
    assert state.size >= 3 and np.all(np.abs(state - 1.0) < 0.02)


def test_momentum_and_energy_are_kept_at_collide_collisions():
    res = _probes("collide", 6, horizon=28)  # the balls meet about 0.7-1 s in
    mom, en = res["collision_momentum_change"]["state"], res["collision_energy_change"]["state"]
    assert np.isfinite(mom).sum() >= 4
    assert np.nanmax(mom) < 1e-6 and np.nanmax(np.abs(en)) < 0.02
    assert np.all(np.isnan(res["gravity_ratio"]["state"]))  # gravity is not in collide's floor plane


@pytest.fixture(scope="module")
def sets():
    return voe.make_sets(3, resolution=24)


def test_voe_clips_are_bit_equal_before_the_violation_and_differ_after(sets):
    for s in sets:
        assert 0 < s.violation_frame < len(s.clips["none"])
        for kind in voe.VIOLATION_TYPES:
            assert np.array_equal(s.clips[kind][:s.violation_frame], s.clips["none"][:s.violation_frame])
            assert not np.array_equal(s.clips[kind], s.clips["none"])


def test_the_exact_simulator_ranks_possible_above_impossible_in_every_set(sets):
    scorer = voe.SimulatorSurprise()
    assert isinstance(scorer, voe.SurpriseScorer)
    result = voe.accuracy(scorer, sets)
    assert set(result) == set(voe.VIOLATION_TYPES)
    for kind, r in result.items():
        assert r["sets"] == len(sets) and r["accuracy"]["value"] == 1.0, kind
        assert r["surprise_margin"]["ci95"][0] > 0
    # possible clips are exactly what the simulator predicts
    s = sets[0]
    from worldsim.eval.predictor import SimState

    spec = get_scene("occlusion").spec
    state = SimState("occlusion", (24, 24), spec.cameras[0], spec.frame_skip, (s.params,), s.start[None])
    assert scorer.surprise(s.clips["none"][None], s.actions[None], conditioning=None, seed=0, state=state)[0] == 0


def test_denoising_surprise_uses_common_random_numbers(sets):
    calls = []

    def loss(x, noise, level, conditioning):  # a toy "denoiser" that predicts the noise as zero
        calls.append((noise.clone(), level.clone()))
        noisy = (1 - level[:, :, None, None, None]) * x + level[:, :, None, None, None] * noise
        return ((noisy - x) ** 2).mean((1, 2, 3, 4)) + 0 * x.sum()

    scorer = voe.DenoisingSurprise(loss, n_draws=3)
    clips = np.stack([sets[0].clips["none"], sets[0].clips["none"], sets[0].clips["vanish"]])
    a = scorer.surprise(clips, None, conditioning=None, seed=7)
    b = scorer.surprise(clips, None, conditioning=None, seed=7)
    assert np.array_equal(a, b)  # seeded
    assert a[0] == a[1]  # identical clips get identical surprise: the draws are shared within a call
    noise, level = calls[0]  # all draws in one call, draw-major: rows 0-2 are draw 0's three clips
    assert len(calls) == 2 and noise.shape[0] == level.shape[0] == 9
    assert torch.equal(noise[0], noise[2]) and torch.equal(level[0], level[2])  # shared by the clips of a draw
    assert not torch.equal(noise[0], noise[3]) and not torch.equal(level[0], level[3])  # draws differ
    assert torch.equal(level[0], level[0, :1].expand_as(level[0]))  # one level for every frame of a draw
    c = scorer.surprise(clips, None, conditioning=None, seed=8)
    assert not np.array_equal(a, c)


def test_voe_needs_a_scene_with_an_occluder():
    from worldsim.errors import SceneError

    with pytest.raises(SceneError, match="occluder"):
        voe.make_sets(1, scene="bounce", resolution=16, frames=4)


def test_object_permanence_probes_on_occlusion():
    from worldsim.eval.permanence import permanence

    spec = get_scene("occlusion").spec
    cols, names = np.array([o.colour for o in spec.objects]), [o.name for o in spec.objects]
    ep = fresh_episodes("occlusion", 8, 4 + 16, resolution=32, start=14)
    truth = ep.frames[:, 4:20]
    perfect = permanence(Paired(ep, 4, truth.copy()), cols, names)
    assert np.isfinite(perfect["reemergence_rate"]).sum() >= 3  # the window spans re-emergences
    for key, want in (("reemergence_rate", 1), ("error_after_reemergence_px", 0), ("colour_kept", 1),
                      ("count_conserved", 1), ("spontaneous_appearance", 0)):
        v = perfect[key][np.isfinite(perfect[key])]
        assert v.size and np.all(v == want), key
    # copy-last keeps the ball where it was last seen: it never re-emerges where MuJoCo's does
    frozen = permanence(rollout(CopyLast(), ep, 4, 16), cols, names)
    assert np.nanmax(frozen["reemergence_rate"]) == 0 and np.nanmax(frozen["spontaneous_appearance"]) == 0
    # a video that recolours the balls (red -> yellow, blue -> magenta) after the context loses colour and objects
    recoloured = truth.copy()
    for c, new in zip(cols, [(230, 200, 40), (200, 40, 200)]):
        recoloured[(truth == c).all(-1)] = new
    r = permanence(Paired(ep, 4, recoloured), cols, names)
    assert np.nanmax(r["colour_kept"]) == 0 and np.nanmax(r["reemergence_rate"]) == 0
    # an object that MuJoCo does not show, drawn from nowhere, is a spontaneous appearance
    one_ball = np.flatnonzero(~ep.active[:, 1])
    if one_ball.size:
        popped = truth.copy()
        i = one_ball[0]
        popped[i, 8:, 2:5, 2:5] = cols[1]
        r = permanence(Paired(ep, 4, popped), cols, names)
        assert r["spontaneous_appearance"][i] > 0


def test_a_world_models_denoising_loss_is_a_surprise_with_common_random_numbers(sets, tmp_path):
    """The VoE interface runs on an (untrained) debug world model; accuracy is for trained models (issue 9)."""
    from worldsim.eval.world_model import WorldModelPredictor
    from worldsim.models.load import save_model
    from worldsim.models.presets import build_model

    torch.manual_seed(0)
    spec = get_scene("occlusion").spec
    scene = {"name": "occlusion", "resolution": [24, 24], "frame_skip": spec.frame_skip, "fps": 25.0,
             "cameras": list(spec.cameras), "action_low": [], "action_high": [], "param_names": [], "windows": [8]}
    path = save_model(tmp_path / "debug.safetensors", build_model("debug", text=None), scene, {})
    scorer = voe.DenoisingSurprise(WorldModelPredictor.load(path).denoising_loss, n_draws=2)
    few = [voe.VoESet(s.seed, s.params, s.start, {k: c[:16] for k, c in s.clips.items()}, s.actions[:15],
                      s.violation_frame) for s in sets[:2]]
    result = voe.accuracy(scorer, few, scene="occlusion")
    assert set(result) == set(voe.VIOLATION_TYPES) and all(r["sets"] == 2 for r in result.values())
    clip = few[0].clips["none"]
    s = scorer.surprise(np.stack([clip, clip]), None, conditioning=None, seed=3)
    assert np.isfinite(s).all() and s[0] == s[1]


def test_batched_draws_score_as_one_call_per_draw(sets, tmp_path):
    """`DenoisingSurprise` puts all its draws in one batch; each clip's surprise must equal the mean of one loss call
    per draw (same noise and level for every clip of a draw), for both of a world model's losses."""
    from worldsim.eval.world_model import WorldModelPredictor
    from worldsim.models.load import save_model
    from worldsim.models.presets import build_model

    torch.manual_seed(0)
    spec = get_scene("occlusion").spec
    scene = {"name": "occlusion", "resolution": [24, 24], "frame_skip": spec.frame_skip, "fps": 25.0,
             "cameras": list(spec.cameras), "action_low": [], "action_high": [], "param_names": [], "windows": [8]}
    pred = WorldModelPredictor.load(save_model(tmp_path / "debug.safetensors", build_model("debug", text=None),
                                               scene, {}))
    none, vanish = sets[0].clips["none"], sets[0].clips["vanish"]
    v = int((none != vanish).any((1, 2, 3)).argmax())  # the first frame the twin shows differently
    assert v >= 6 and len(none) >= v + 4
    clips = np.stack([none[v - 6:v + 4], vanish[v - 6:v + 4], sets[1].clips["none"][v - 6:v + 4]])
    x = rearrange(torch.from_numpy(clips).float() / 127.5 - 1.0, "b t h w c -> b t c h w")
    for loss in (pred.denoising_loss, pred.next_frame_loss):
        got = voe.DenoisingSurprise(loss, n_draws=3).surprise(clips, None, conditioning=None, seed=5)
        want = np.zeros(3)
        for d in range(3):
            g = torch.Generator().manual_seed(5 * 1009 + d)
            noise = torch.randn(x.shape[1:], generator=g).expand_as(x)
            level = torch.rand((), generator=g).clamp(0.02, 0.98).expand(3, x.shape[1])
            want += loss(x, noise, level, None).double().numpy() / 3
        assert np.allclose(got, want, rtol=1e-4, atol=1e-7), (loss.__name__, got, want)
        assert len(set(got.round(8))) == 3  # the three clips score differently


def test_evaluate_reports_voe_beside_the_oracle():
    from worldsim.errors import ConfigError
    from worldsim.eval.evaluate import EvalConfig, evaluate

    ev = evaluate(EvalConfig(scene="occlusion", start=14, episodes=1, context=2, horizon=2, voe=1, bootstrap=50,
                             resolution=24, baselines=()))
    oracle = ev.figures["voe"]["simulator (oracle)"]
    assert {k: r["accuracy"]["value"] for k, r in oracle.items()} == {k: 1.0 for k in voe.VIOLATION_TYPES}
    assert "copy-last" not in ev.figures["voe"]  # no denoising loss, no surprise
    with pytest.raises(ConfigError, match="occluder") as e:
        evaluate(EvalConfig(scene="bounce", voe=2, episodes=1, horizon=2))
    assert e.value.field == "--voe"


def test_next_frame_surprise_is_the_teacher_forced_loss_of_each_frame_after_its_clean_past(tmp_path):
    """The cached next-frame surprise equals, up to one constant per call, the same loss computed frame by frame with
    an uncached forward over the clean past (differences between clips are what VoE compares)."""
    from worldsim.diffusion.edm import loss_weight, per_frame
    from worldsim.eval.world_model import WorldModelPredictor
    from worldsim.models.load import save_model
    from worldsim.models.presets import build_model

    torch.manual_seed(0)
    spec = get_scene("occlusion").spec
    scene = {"name": "occlusion", "resolution": [16, 16], "frame_skip": spec.frame_skip, "fps": 25.0,
             "cameras": list(spec.cameras), "action_low": [], "action_high": [], "param_names": [], "windows": [8]}
    pred = WorldModelPredictor.load(save_model(tmp_path / "debug.safetensors", build_model("debug", text=None), scene,
                                               {}))
    model, g = pred.model, torch.Generator().manual_seed(1)
    x = torch.rand(3, 8, 3, 16, 16, generator=g) * 2 - 1
    x[1, :3], x[2, :5] = x[0, :3], x[0, :5]  # clip 1 departs from clip 0 at frame 3, clip 2 at frame 5
    noise = torch.randn(x.shape[1:], generator=g).expand_as(x)
    level = torch.full((3, 8), 0.6)
    got = pred.next_frame_loss(x, noise, level, None)
    edm = model.edm
    sigma = float((edm.p_mean + edm.p_std * torch.special.ndtri(torch.tensor(0.6, dtype=torch.float64))).exp())
    want = torch.zeros(3)
    with torch.no_grad():
        for t in range(1, 8):
            sg = torch.zeros(3, t + 1)
            sg[:, t] = sigma
            xt = x[:, :t + 1] + per_frame(sg) * noise[:, :t + 1]
            d = model.denoiser(xt, sg, model.cond(3, t + 1))[:, t]
            want += (loss_weight(sg[:, t:], edm)[:, :, None, None] * (d[:, None] - x[:, t:t + 1]) ** 2).mean((1, 2, 3, 4))
    assert torch.allclose(got - got[0], want - want[0], atol=1e-4)
    assert (got - got[0]).abs()[1:].min() > 1e-3  # the clips that differ do score differently
    assert pred.next_frame_loss(x[:1].expand(2, -1, -1, -1, -1), noise[:2], level[:2], None).abs().max() == 0

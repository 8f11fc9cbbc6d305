"""generate(): every mode's noise plan and exact parts on a debug model (issue 7). Quality is scored on trained
weights in the fidelity issue; here: which frames are given and kept bit-exact, where clips end up, and that the
output depends on every input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from rollout_helpers import debug_weights

from worldsim.diffusion.edm import karras_sigmas
from worldsim.errors import ConfigError, WeightsError
from worldsim.rollout import MODES, Rollout, RolloutConfig, WorldModel, generate, mode_plan


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return WorldModel.load(debug_weights(tmp_path_factory.mktemp("w") / "bounce.safetensors", "bounce"))


@pytest.fixture(scope="module")
def clips():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (1, 2, 16, 16, 3), dtype=np.uint8), rng.integers(0, 255, (1, 2, 16, 16, 3),
                                                                                  dtype=np.uint8)


def _differ(a, b) -> bool:
    return not np.array_equal(a, b)


def test_plans_of_every_mode():
    steps, T = 4, 6
    full = karras_sigmas(steps)
    for mode in MODES:
        p = mode_plan(mode, steps, T, given=2, tail=1, sigma_start=1.5)
        assert p.shape == (steps + 1, T) and (p[-1] == 0).all() and (p[1:] <= p[:-1]).all()
    given = {m: (mode_plan(m, steps, T, given=2, tail=1)[0] == 0).nonzero().flatten().tolist() for m in MODES}
    assert given == {"t2v": [], "preview": [], "i2v": [0], "extend_forward": [0, 1], "extend_backward": [4, 5],
                     "loop": [], "connect": [0, 1, 5], "edit": []}
    assert torch.equal(mode_plan("t2v", steps, T)[:, 0], full)
    assert float(mode_plan("edit", steps, T, sigma_start=1.5)[0, 0]) == pytest.approx(1.5)  # SDEdit starts part-way
    with pytest.raises(ConfigError, match="step"):
        mode_plan("t2v", 0, T)


def test_t2v_depends_on_caption_actions_cameras_seed_and_guidance(model):
    base = generate(model, "t2v", frames=4, steps=3, caption="a red ball", seed=0).frames
    assert base.shape == (1, 4, 16, 16, 3) and base.dtype == np.uint8
    assert np.array_equal(base, generate(model, "t2v", frames=4, steps=3, caption="a red ball", seed=0).frames)
    assert _differ(base, generate(model, "t2v", frames=4, steps=3, caption="a blue ball", seed=0).frames)
    assert _differ(base, generate(model, "t2v", frames=4, steps=3, caption="a red ball", seed=1).frames)
    assert _differ(base, generate(model, "t2v", frames=4, steps=3, caption="a red ball", seed=0,
                                  guidance={"text": 3.0}).frames)
    shots = generate(model, "t2v", frames=4, steps=3, caption="a red ball", seed=0,
                     cameras=["front", "front", "tilted", "tilted"]).frames  # multi-shot: a cut at frame 2
    assert np.array_equal(shots[:, :2], base[:, :2]) and _differ(shots[:, 2:], base[:, 2:])  # causal: cut later


def test_pyramid_staggers_the_t2v_frames(model):
    """`stagger` S: frame j waits at full noise S * j rows, then takes t2v's steps (Diffusion Forcing's pyramid);
    S = 0 is t2v's plan and S = steps one frame at a time (stairs with no context). With `rollout_after` it staggers
    the frames made from the conditioning, and the rest is the same rollout from them."""
    from worldsim.diffusion import plans

    col = karras_sigmas(4)
    assert torch.equal(plans.pyramid(4, 3, 0), plans.t2v(4, 3))
    assert torch.equal(plans.pyramid(4, 3, 4), plans.stairs(4, 3, 0))
    p = plans.pyramid(4, 3, 1)                                                       # (4 + 2 + 1, 3)
    plans.check(p, 3)
    assert p.shape == (7, 3) and all(torch.equal(p[j : j + 5, j], col) and (p[:j, j] == col[0]).all()
                                     for j in range(3))
    kw = dict(steps=3, caption="a red ball", seed=0)
    g = generate(model, "t2v", frames=3, stagger=1, **kw)
    assert g.plan.shape == (3 + 2 + 1, 3) and _differ(g.frames, generate(model, "t2v", frames=3, **kw).frames)
    head = generate(model, "t2v", frames=2, stagger=2, **kw).frames
    rolled = generate(model, "t2v", frames=4, rollout_after=2, stagger=2, **kw)
    assert np.array_equal(rolled.frames[:, :2], head)
    assert np.array_equal(rolled.frames[:, 2:], Rollout(model, head, text="a red ball", seed=0).run(horizon=2))
    for bad in (-1, 1.5, True):
        with pytest.raises(ConfigError, match="stagger"):
            generate(model, "t2v", frames=3, stagger=bad)
    with pytest.raises(ConfigError, match="stagger applies to t2v"):
        generate(model, "i2v", frames=3, image=np.zeros((16, 16, 3), np.uint8), stagger=1)


def test_t2v_rolled_out_after_its_first_frames(model):
    """rollout_after K: the first K frames are the K-frame t2v sample itself, the rest the cached rollout's next
    frames from them under the same caption, guidance and seed; not the whole clip denoised together."""
    kw = dict(steps=3, caption="a red ball", seed=0, guidance={"text": 2.0})
    g = generate(model, "t2v", frames=5, rollout_after=2, **kw)
    head = generate(model, "t2v", frames=2, **kw).frames
    assert g.frames.shape == (1, 5, 16, 16, 3) and np.array_equal(g.frames[:, :2], head) and not g.given.any()
    r = Rollout(model, head, text="a red ball", config=RolloutConfig(guidance={"text": 2.0}), seed=0)
    assert np.array_equal(g.frames[:, 2:], r.run(horizon=3))
    assert _differ(g.frames, generate(model, "t2v", frames=5, **kw).frames)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="rollout_after"):
            generate(model, "t2v", frames=5, rollout_after=bad)
    np.testing.assert_array_equal(generate(model, "t2v", frames=5, rollout_after=5, **kw).frames,
                                  generate(model, "t2v", frames=5, **kw).frames)  # K >= frames: the whole clip
    with pytest.raises(ConfigError, match="rollout_after applies to t2v"):
        generate(model, "loop", frames=5, rollout_after=2)
    with pytest.raises(ConfigError, match="cameras"):
        generate(model, "t2v", frames=5, rollout_after=2, cameras=["front"] * 4)


def test_weights_record_their_t2v_rollout(model, tmp_path):
    """A file that records `sampler.rollout_after` (`worldsim export --rollout-after`) samples t2v so by default;
    the caller's K wins, K >= frames is the whole clip, and preview's draft stays whole."""
    from worldsim.training.export import export_weights

    path = export_weights(model.source, tmp_path / "after2.safetensors", rollout_after=2)
    rolled = WorldModel.load(path)
    assert rolled.rollout_after == 2 and model.rollout_after is None and rolled.steps == model.steps
    kw = dict(steps=3, caption="a red ball", seed=0)
    got = generate(rolled, "t2v", frames=5, **kw).frames
    np.testing.assert_array_equal(got, generate(model, "t2v", frames=5, rollout_after=2, **kw).frames)
    whole = generate(model, "t2v", frames=5, **kw).frames
    assert _differ(got, whole)
    np.testing.assert_array_equal(generate(rolled, "t2v", frames=5, rollout_after=5, **kw).frames, whole)
    np.testing.assert_array_equal(generate(rolled, "t2v", frames=2, **kw).frames,
                                  generate(model, "t2v", frames=2, **kw).frames)  # no longer than K: whole
    pv = dict(frames=4, resolution=32, preview_resolution=16, **kw)
    np.testing.assert_array_equal(generate(rolled, "preview", **pv).preview, generate(model, "preview", **pv).preview)


def test_weights_record_their_t2v_stagger(model, tmp_path):
    """A file that records `sampler.stagger` (`worldsim export --stagger`) makes its t2v frames with that pyramid by
    default, also the head before a rollout; the caller's S wins (0: all together); preview's draft stays unstaggered;
    a negative or fractional record is refused naming `sampler.stagger`."""
    from worldsim.training.export import export_weights
    from worldsim.weights import load_weights, save_weights

    path = export_weights(model.source, tmp_path / "stagger2.safetensors", stagger=2)
    staggered = WorldModel.load(path)
    assert staggered.stagger == 2 and model.stagger == 0 and staggered.rollout_after is None
    kw = dict(steps=3, caption="a red ball", seed=0)
    got = generate(staggered, "t2v", frames=3, **kw)
    assert torch.equal(got.plan, mode_plan("t2v", 3, 3, model=model, stagger=2))
    np.testing.assert_array_equal(got.frames, generate(model, "t2v", frames=3, stagger=2, **kw).frames)
    together = generate(model, "t2v", frames=3, **kw).frames
    assert _differ(got.frames, together)
    np.testing.assert_array_equal(generate(staggered, "t2v", frames=3, stagger=0, **kw).frames, together)
    np.testing.assert_array_equal(generate(staggered, "t2v", frames=4, rollout_after=2, **kw).frames,
                                  generate(model, "t2v", frames=4, rollout_after=2, stagger=2, **kw).frames)
    pv = dict(frames=4, resolution=32, preview_resolution=16, **kw)
    np.testing.assert_array_equal(generate(staggered, "preview", **pv).preview,
                                  generate(model, "preview", **pv).preview)
    tensors, meta = load_weights(path, dtype=None)
    for bad in (-1, 1.5, True):
        save_weights(tmp_path / "bad.safetensors", tensors, {**meta, "sampler": {"stagger": bad}})
        with pytest.raises(WeightsError, match="stagger") as e:
            WorldModel.load(tmp_path / "bad.safetensors")
        assert e.value.field == "sampler.stagger"
    with pytest.raises(ConfigError, match="stagger"):
        export_weights(model.source, tmp_path / "never.safetensors", stagger=-1)
    assert not (tmp_path / "never.safetensors").exists()


def test_i2v_keeps_the_image_and_follows_it(model, clips):
    a, b = clips
    g = generate(model, "i2v", frames=4, steps=3, image=a[0, 0], batch=2)
    assert g.frames.shape == (2, 4, 16, 16, 3) and g.given.tolist() == [True, False, False, False]
    assert (g.frames[:, 0] == a[0, 0]).all()
    assert _differ(g.frames[:, 1:], generate(model, "i2v", frames=4, steps=3, image=b[0, 0], batch=2).frames[:, 1:])


def test_extend_forward_and_backward(model, clips):
    a, b = clips
    f = generate(model, "extend_forward", frames=5, steps=3, clip=a)
    assert np.array_equal(f.frames[:, :2], a) and f.given.tolist() == [True, True, False, False, False]
    assert _differ(f.frames[:, 2:], generate(model, "extend_forward", frames=5, steps=3, clip=b).frames[:, 2:])
    bw = generate(model, "extend_backward", frames=5, steps=3, clip=a, batch=3)
    assert np.array_equal(bw.frames[:, -2:], np.broadcast_to(a, (3, *a.shape[1:])))  # ends with the given clip
    assert _differ(bw.frames[0, :3], bw.frames[1, :3])  # several openings reach the same ending
    assert _differ(bw.frames[:, :3], generate(model, "extend_backward", frames=5, steps=3, clip=b,
                                              batch=3).frames[:, :3])


def test_time_reversed_weights_extend_backward_as_a_reversed_rollout(tmp_path, clips):
    """Weights with a time-direction embedding (trained on reversed clips too) extend backward frame by frame:
    exactly the rollout of the given clip played backward and told so, played forward again, with the stairs plan;
    per-frame cameras are reversed with it; a caption (reversed clips were trained without one) or a wrong camera
    count is an error, and so is asking weights without the embedding to play time backward."""
    import dataclasses

    from rollout_helpers import scene_meta

    from worldsim.diffusion import plans
    from worldsim.diffusion.loss import LossConfig
    from worldsim.models import build_model
    from worldsim.models.load import save_model
    from worldsim.rollout import Rollout, RolloutConfig

    torch.manual_seed(0)
    net = build_model("debug", camera_classes=2, time_reversal=True)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    m = WorldModel.load(save_model(tmp_path / "rev.safetensors", net, {**scene_meta("bounce"), "time_reversed": True},
                                   dataclasses.asdict(LossConfig())))
    assert m.net.cfg.time_reversal
    a, b = clips
    g = generate(m, "extend_backward", frames=5, steps=3, clip=a, batch=2, seed=4)
    assert np.array_equal(g.frames[:, -2:], np.broadcast_to(a, (2, *a.shape[1:]))) and g.given.tolist()[-2:] == [
        True, True]
    back = np.ascontiguousarray(np.broadcast_to(a, (2, *a.shape[1:]))[:, ::-1])

    def run(reversed_: bool) -> np.ndarray:
        return Rollout(m, back, config=RolloutConfig(steps=3), seed=4, reversed=reversed_).run(horizon=3)

    assert np.array_equal(g.frames[:, :3], run(True)[:, ::-1])
    assert _differ(run(True), run(False))  # the direction embedding is an input
    assert torch.equal(g.plan, plans.stairs(3, 5, 2, "backward", m.edm))
    assert _differ(g.frames[:, :3], generate(m, "extend_backward", frames=5, steps=3, clip=b, batch=2,
                                             seed=4).frames[:, :3])
    cams = ["tilted", "front", "front", "front", "front"]  # a cut: the first frame, made last, from another camera
    cut = generate(m, "extend_backward", frames=5, steps=3, clip=a, batch=2, seed=4, cameras=cams).frames
    assert np.array_equal(cut[:, 1:], g.frames[:, 1:]) and _differ(cut[:, 0], g.frames[:, 0])
    with pytest.raises(ConfigError, match="caption"):
        generate(m, "extend_backward", frames=5, clip=a, caption="a red ball")
    with pytest.raises(ConfigError, match="one camera per frame"):
        generate(m, "extend_backward", frames=5, clip=a, cameras=["front"] * 4)
    forward_only = WorldModel.load(debug_weights(tmp_path / "fwd.safetensors", "bounce"))
    with pytest.raises(ConfigError, match="reversed"):
        Rollout(forward_only, back, reversed=True)


def test_connect_starts_and_ends_with_the_clips(model, clips):
    a, b = clips
    g = generate(model, "connect", frames=6, steps=3, head=a, tail=b)
    assert np.array_equal(g.frames[:, :2], a) and np.array_equal(g.frames[:, -2:], b)
    assert g.given.tolist() == [True, True, False, False, True, True]
    assert _differ(g.frames[:, 2:4], generate(model, "connect", frames=6, steps=3, head=b, tail=a).frames[:, 2:4])


def test_loop_ties_first_and_last_frame(model):
    g = generate(model, "loop", frames=5, steps=3, batch=2, caption="loop")
    assert np.array_equal(g.frames[:, 0], g.frames[:, -1])
    assert _differ(g.frames[:, 0], g.frames[:, 2])


def test_edit_under_new_caption_or_actions(model, clips):
    a, _ = clips
    clip = np.concatenate([a, a], 1)
    e1 = generate(model, "edit", clip=clip, steps=3, caption="a red ball", sigma_start=1.0)
    e2 = generate(model, "edit", clip=clip, steps=3, caption="a green ball", sigma_start=1.0)
    assert e1.frames.shape == clip.shape and _differ(e1.frames, e2.frames)
    low = generate(model, "edit", clip=clip, steps=3, caption="a red ball", sigma_start=0.05)
    # a low starting level keeps more of the clip (SDEdit's trade-off)
    assert np.abs(low.frames.astype(int) - clip).mean() < np.abs(e1.frames.astype(int) - clip).mean()


def test_preview_then_render_of_the_same_sample(model):
    g = generate(model, "preview", frames=3, steps=3, resolution=32, preview_resolution=16, seed=3, sigma_start=0.5)
    assert g.preview.shape == (1, 3, 16, 16, 3) and g.frames.shape == (1, 3, 32, 32, 3)
    up = np.repeat(np.repeat(g.preview, 2, 2), 2, 3).astype(int)
    other = generate(model, "preview", frames=3, steps=3, resolution=32, preview_resolution=16, seed=4,
                     sigma_start=0.5)
    # the render refines its own draft: closer to it than to another seed's draft
    assert np.abs(g.frames - up).mean() < np.abs(other.frames - up).mean()
    # without a level, the render starts where it keeps a real draft (SIGMA_START), lower than edit's
    default = generate(model, "preview", frames=3, steps=3, resolution=32, preview_resolution=16, seed=3)
    edit = generate(model, "edit", clip=g.frames, steps=3, resolution=32)
    assert float(default.plan[0, 0]) == pytest.approx(1.0) and float(edit.plan[0, 0]) == pytest.approx(2.0)


def test_preview_render_keeps_the_draft_as_its_block_means(model):
    """Since E87 the render keeps the draft: each 2x2 block of the 32-px render averages to the draft's pixel (up to
    uint8 rounding, where no pixel clips), so the render shows what the draft showed; `keep_draft=False` is the free
    SDEdit of before. `edit` takes the same constraint at any scale that tiles the frame (`keep_scale`)."""
    kw = dict(frames=3, steps=3, resolution=32, preview_resolution=16, seed=3)
    g = generate(model, "preview", **kw)
    blocks = g.frames.reshape(1, 3, 16, 2, 16, 2, 3).astype(float)                          # (B, T, h, 2, w, 2, C)
    inside = ((blocks > 0) & (blocks < 255)).all(axis=(3, 5))                               # (B, T, h, w, C)
    assert inside.mean() > 0.5
    gap = np.abs(blocks.mean(axis=(3, 5)) - g.preview)[inside]
    assert gap.max() <= 1.0
    free = generate(model, "preview", keep_draft=False, **kw)
    assert np.array_equal(free.preview, g.preview)  # the same draft, rendered freely
    assert np.abs(free.frames.reshape(blocks.shape).mean(axis=(3, 5)) - g.preview)[inside].mean() > 2 * gap.mean()
    clip = np.repeat(np.repeat(g.preview, 2, 2), 2, 3)
    wide = generate(model, "edit", clip=clip, steps=3, resolution=32, keep_scale=(2, 4)).frames
    wide = wide.reshape(1, 3, 16, 2, 8, 4, 3).astype(float)
    ok = ((wide > 0) & (wide < 255)).all(axis=(3, 5))
    want = clip.reshape(wide.shape).astype(float).mean(axis=(3, 5))
    assert np.abs(wide.mean(axis=(3, 5)) - want)[ok].max() <= 1.0
    with pytest.raises(ConfigError, match="keep_scale"):
        generate(model, "edit", clip=clip, steps=3, resolution=32, keep_scale=3)  # does not tile 32
    with pytest.raises(ConfigError, match="keep_scale"):
        generate(model, "t2v", frames=3, steps=3, keep_scale=2)
    with pytest.raises(ConfigError, match="keep_draft"):
        generate(model, "t2v", frames=3, steps=3, keep_draft=False)
    with pytest.raises(ConfigError) as e:
        generate(model, "preview", preview_steps=0, **kw)  # not "the default": zero steps is a mistake
    assert e.value.field == "preview_steps"


def test_aspect_ratio_and_duration(tmp_path):
    from worldsim.models import build_model
    from worldsim.models.load import save_model
    from rollout_helpers import scene_meta

    meta = scene_meta("bounce", resolutions=((16, 32), (16, 16)))
    net = build_model("debug", camera_classes=2)
    m = WorldModel.load(save_model(tmp_path / "wide.safetensors", net, meta, {"edm": {}}))
    assert generate(m, "t2v", frames=9, steps=2, resolution=(16, 32)).frames.shape == (1, 9, 16, 32, 3)
    with pytest.raises(WeightsError):
        generate(m, "t2v", frames=4, steps=2, resolution=(32, 16))


def test_generate_bad_input(model, clips):
    a, _ = clips
    with pytest.raises(ConfigError, match="steps"):
        generate(model, "t2v", frames=4, steps=0)
    with pytest.raises(ConfigError, match="guidance"):
        generate(model, "t2v", frames=4, guidance={"text": -1.0})
    with pytest.raises(ConfigError, match="mode"):
        generate(model, "dream", frames=4)
    with pytest.raises(ConfigError, match="needs `clip`"):
        generate(model, "extend_forward", frames=4)
    with pytest.raises(ConfigError, match="expected 16x16"):
        generate(model, "extend_forward", frames=4, clip=np.zeros((1, 2, 8, 8, 3), np.uint8))
    nan = a.astype(np.float32)
    nan[0, 0, 0, 0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        generate(model, "i2v", frames=4, image=nan[0, 0])
    with pytest.raises(WeightsError):
        generate(model, "t2v", frames=4, resolution=64)
    with pytest.raises(WeightsError):
        generate(model, "t2v", frames=2, cameras=["front", "side"])
    with pytest.raises(ConfigError, match="at least"):
        generate(model, "extend_forward", frames=2, clip=a)
    with pytest.raises(ConfigError, match="not UTF-8"):
        generate(model, "t2v", frames=2, caption=b"a red \xff ball")
    assert generate(model, "t2v", frames=2, steps=1, caption="a red ball".encode()).frames.shape[1] == 2

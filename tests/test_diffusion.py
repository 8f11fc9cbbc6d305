"""Per-frame-noise EDM: preconditioning, the loss and its conditioning patterns, noise plans for every mode,
the samplers (given frames exact; an analytic denoiser recovers its distribution; guidance; callback), and small
"does it really learn" runs: overfitting one clip, and actions and captions that really steer the model."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from worldsim import diffusion as D
from worldsim.diffusion import plans
from worldsim.diffusion.fade import FadeConfig, fade_context
from worldsim.diffusion.loss import draw, motion_mask
from worldsim.diffusion.own_context import OwnContextConfig, own_context, quantize
from worldsim.errors import ConfigError
from worldsim.models import Cond, build_model





def _live_model(**kw):
    torch.manual_seed(0)
    m = build_model("debug", **kw)
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.1)
    return m.eval()


# -- preconditioning and loss -----------------------------------------------------------------------------------

def test_clean_frames_pass_through_the_denoiser_exactly():
    den = D.EDMDenoiser(lambda x, noise, cond: torch.randn_like(x) * 100)
    x = torch.randn(2, 3, 3, 4, 4)
    sigma = torch.tensor([[0.0, 1.0, 0.0], [5.0, 0.0, 0.3]])
    out = den(x, sigma)
    assert torch.equal(out[sigma == 0], x[sigma == 0])
    assert not torch.allclose(out[sigma > 0], x[sigma > 0])


def test_context_patterns_all_appear():
    cfg = D.LossConfig(p_context=0.8)
    m = D.context_mask(4000, 6, cfg, torch.Generator().manual_seed(0))
    none = ~m.any(1)
    assert 0.15 < none.float().mean() < 0.25  # 1 - p_context
    first_only = m[:, 0] & ~m[:, 1:].any(1)
    last_k = ~m[:, 0] & m[:, -1]
    first_last = m[:, 0] & m[:, -1] & ~m[:, 1:-1].any(1)
    first_k = m[:, 0] & m[:, 1] & ~m[:, -1]
    for pattern in (first_only, last_k, first_last, first_k):
        assert pattern.float().mean() > 0.05
    assert D.context_mask(10, 1, cfg).sum() == 0  # one frame: nothing to condition on


def test_ends_k_gives_equal_heads_and_tails_and_is_opt_in():
    for frames in (3, 8, 16):
        m = D.context_mask(500, frames, D.LossConfig(p_context=1.0, patterns=("ends_k",)),
                           torch.Generator().manual_seed(1))
        head = m.int().cumprod(1).sum(1)  # leading context frames
        tail = m.flip(1).int().cumprod(1).sum(1)
        assert torch.equal(head, tail) and (head >= 1).all()
        assert torch.equal(m.sum(1), head + tail)  # one block at each end, nothing between
        assert (~m).any(1).all()  # at least one frame to make
        assert head.max() == (frames - 1) // 2  # as long as the clip allows
    # not in the default set: configs written before it keep their random draws
    from worldsim.diffusion.loss import PATTERNS

    assert "ends_k" not in D.LossConfig().patterns and "ends_k" in PATTERNS
    assert torch.equal(D.context_mask(64, 8, D.LossConfig(p_context=0.8), torch.Generator().manual_seed(0)),
                       D.context_mask(64, 8, D.LossConfig(p_context=0.8, patterns=PATTERNS[:4]),
                                      torch.Generator().manual_seed(0)))


def test_loss_skips_context_frames_and_gives_them_small_noise():
    seen = {}

    def net(x, noise, cond):
        seen["noise"] = noise
        return torch.zeros_like(x)

    den = D.EDMDenoiser(net)
    x = torch.randn(64, 5, 3, 4, 4)
    cfg = D.LossConfig(p_context=1.0, patterns=("first_k",), context_sigma=0.05)
    g = torch.Generator().manual_seed(0)
    D.loss(den, x, cfg=cfg, generator=g)
    ctx = D.context_mask(64, 5, cfg, torch.Generator().manual_seed(0))
    sigma = (4 * seen["noise"]).exp()  # the network saw c_noise = log(sigma) / 4
    assert (sigma[ctx] <= 0.05 + 1e-6).all() and (sigma[~ctx] > 0).all()
    # changing what the denoiser says on context frames does not change the loss
    ctx1 = torch.zeros(2, 5, dtype=torch.bool)
    ctx1[:, :2] = True
    sig = torch.full((2, 5), 0.7)
    noise = torch.randn(2, 5, 3, 4, 4)

    def liar(x_, sigma_, cond=None):
        out = x_.clone()
        out[:, :2] += 10.0
        return out

    l1 = D.loss(liar, x[:2], sigma=sig, noise=noise, context=ctx1)
    l2 = D.loss(lambda x_, s_, c=None: x_, x[:2], sigma=sig, noise=noise, context=ctx1)
    assert torch.equal(l1, l2)


def _moving_square_clip(frames: int = 8) -> torch.Tensor:
    """(1, T, 3, 16, 16): a grey box with a static 1-px line at row 1 and a red 3x3 square moving 1 px a frame."""
    x = torch.full((1, frames, 3, 16, 16), 0.6)
    x[..., 1, :] = -0.8
    for t in range(frames):
        x[0, t, :, 8:11, 3 + t:6 + t] = torch.tensor([0.8, -0.8, -0.8])[:, None, None]
    return x


def test_fade_scales_moving_objects_and_leaves_the_background():
    x = _moving_square_clip()
    ones, zeros = torch.ones(1, 8), torch.zeros(1, 8)
    assert torch.equal(fade_context(x, ones, zeros), x)  # alpha 1, no blur: untouched
    for blur in (0.0, 1.0):
        y = fade_context(x, torch.full((1, 8), 0.3), torch.full((1, 8), blur))
        # The square keeps 0.3 of its difference from the background (a blur moves it but keeps its sum) ...
        assert torch.allclose((y - 0.6)[..., 4:, :].sum(dim=(2, 3, 4)), 0.3 * (x - 0.6)[..., 4:, :].sum(dim=(2, 3, 4)),
                              atol=1e-4)
        # ... and the static line and everything far from the square are exactly as they were.
        assert torch.equal(y[..., :4, :], x[..., :4, :])
    blurred = fade_context(x, ones, torch.full((1, 8), 1.0))
    assert (blurred - x)[0, :, 0, 8:11].abs().amax() > 0.1  # the square's own pixels lost contrast to its rim


def test_fade_draws_only_context_frames_and_nothing_when_off():
    off, on = D.LossConfig(p_context=1.0), D.LossConfig(p_context=1.0, fade=FadeConfig(p=1.0, min_alpha=0.2))
    a = draw((16, 6, 3, 4, 4), off, torch.Generator().manual_seed(0))
    b = draw((16, 6, 3, 4, 4), on, torch.Generator().manual_seed(0))
    assert a.fade is None
    assert torch.equal(a.sigma, b.sigma) and torch.equal(a.noise, b.noise)  # runs without fading keep their draws
    alpha, blur = b.fade
    assert torch.equal(alpha < 1, b.context) and ((alpha >= 0.2) & (alpha <= 1)).all()
    assert (blur[~b.context] == 0).all() and (blur[b.context] > 0).all()
    half = b.rows(slice(0, None, 2))
    assert torch.equal(half.fade[0], alpha[::2])
    with pytest.raises(ConfigError, match="p"):
        FadeConfig(p=1.5)


def test_loss_shows_faded_context_and_scores_clean_frames():
    seen = {}

    def exact(x_, sigma_, cond=None):
        seen["x"] = x_
        return x_

    x = _moving_square_clip().expand(4, -1, -1, -1, -1).contiguous()
    cfg = D.LossConfig(p_context=1.0, patterns=("first_k",), context_sigma=0.0, fade=FadeConfig(p=1.0))
    drawn = draw(tuple(x.shape), cfg, torch.Generator().manual_seed(1))
    D.loss(exact, x, cfg=cfg, drawn=drawn)
    shown = seen["x"] - drawn.sigma[:, :, None, None, None] * drawn.noise
    ctx = drawn.context
    assert torch.allclose(shown[~ctx], x[~ctx], atol=1e-6)  # scored frames: the clean clip plus its noise
    assert (shown[ctx] - x[ctx]).abs().amax() > 0.1  # context frames: faded


def test_motion_mask_marks_the_square_where_it_is_and_was_and_not_the_static_line():
    x = _moving_square_clip()
    moved = motion_mask(x, "target")[0]                                                      # (T, H, W)
    assert not moved[:, 1].any()  # the static line never moves
    for t in range(1, 8):  # the square's leading column, and the column it just left
        assert moved[t, 8:11, 5 + t].all() and moved[t, 8:11, 2 + t].all()
    for t in range(7):  # its trailing column, which it leaves next
        assert moved[t, 8:11, 3 + t].all()
    assert not any(moved[t, 8:11, 4 + t].any() for t in range(8))  # its middle stays red in every neighbour
    one = x[:, :1]  # one frame: nothing to compare
    assert not motion_mask(one, "target").any() and not motion_mask(one, "past", 2).any()


def test_past_motion_mask_covers_where_the_square_goes_from_the_context_alone():
    x = _moving_square_clip()
    past = motion_mask(x, "past", radius=1)[0]                                               # (T, H, W)
    assert not past[:2].any()  # no two previous frames to compare
    for t in range(2, 8):  # the square of frame t (columns 3+t..5+t) lies in the widened mask of frames t-2, t-1
        assert past[t, 8:11, 3 + t:6 + t].all()
    assert not past[:, 1].any() and not past[:, 13:].any()  # the static line and the far rows stay plain
    # the mask depends on the past only: changing the scored frame leaves its own mask alone
    y = x.clone()
    y[0, 5] = 0.0
    assert torch.equal(motion_mask(y, "past", 1)[0, 5], past[5])
    assert not torch.equal(motion_mask(x, "past", 0)[0], past)  # the radius widens it


def test_motion_weight_scores_errors_on_moving_pixels_more_and_keeps_validation_plain():
    x = _moving_square_clip().expand(2, -1, -1, -1, -1).contiguous()
    moved = motion_mask(x, "target")
    sig, ctx = torch.full((2, 8), 0.5), torch.zeros(2, 8, dtype=torch.bool)
    noise = torch.zeros_like(x)

    def erring(where):
        def den(x_, s_, c=None):
            return x + 0.1 * where.unsqueeze(2).float()  # a fixed error on the chosen pixels only
        return den

    plain, weighted = D.LossConfig(), D.LossConfig(motion_weight=20.0, motion_mask="target")
    some = torch.rand(moved.shape, generator=torch.Generator().manual_seed(0)) < 0.05
    on_moving, on_static = erring(moved), erring(~moved & some)
    kw = dict(sigma=sig, noise=noise, context=ctx)
    # the same error on moving pixels costs more with the weight; on static pixels, less (a weighted mean)
    assert D.loss(on_moving, x, cfg=weighted, **kw) > 3 * D.loss(on_moving, x, cfg=plain, **kw)
    assert D.loss(on_static, x, cfg=weighted, **kw) < D.loss(on_static, x, cfg=plain, **kw)
    past = D.LossConfig(motion_weight=20.0)  # the default mask, from the context: weighs the square's frames 2..7
    assert D.loss(on_moving, x, cfg=past, **kw) > 2 * D.loss(on_moving, x, cfg=plain, **kw)
    # only clips given no context frame, if asked: clips given one keep the plain mean, the others are weighted
    only = D.LossConfig(motion_weight=20.0, motion_mask="target", motion_clips="no_context")
    both, first = ctx.clone(), ctx.clone()
    both[:, 0] = True                                                                      # every clip given frame 0
    first[0, 0] = True                                                                     # clip 0 only
    given = dict(sigma=sig, noise=noise, context=both)
    torch.testing.assert_close(D.loss(on_moving, x, cfg=only, **given), D.loss(on_moving, x, cfg=plain, **given))
    torch.testing.assert_close(D.loss(on_moving, x, cfg=only, **kw), D.loss(on_moving, x, cfg=weighted, **kw))
    mixed = dict(sigma=sig, noise=noise, context=first)
    assert D.loss(on_moving, x, cfg=plain, **mixed) < D.loss(on_moving, x, cfg=only, **mixed) \
        < D.loss(on_moving, x, cfg=weighted, **mixed)
    with pytest.raises(ConfigError, match="motion_clips"):
        D.LossConfig(motion_clips="context")
    # validation is the plain mean whatever the training weight
    assert torch.equal(D.fixed_grid_loss(on_moving, x, cfg=weighted), D.fixed_grid_loss(on_moving, x, cfg=plain))
    with pytest.raises(ConfigError, match="motion_weight"):
        D.LossConfig(motion_weight=-1.0)
    with pytest.raises(ConfigError, match="motion_mask"):
        D.LossConfig(motion_mask="future")


def test_own_context_draws_nothing_when_off_and_only_trailing_prefix_context():
    off = D.LossConfig(p_context=1.0)
    on = D.LossConfig(p_context=1.0, own_context=OwnContextConfig(p=1.0, frames=2))
    a = draw((64, 6, 3, 4, 4), off, torch.Generator().manual_seed(0))
    b = draw((64, 6, 3, 4, 4), on, torch.Generator().manual_seed(0))
    assert a.own is None  # runs without it keep every draw they had
    assert torch.equal(a.sigma, b.sigma) and torch.equal(a.noise, b.noise) and torch.equal(a.context, b.context)
    count, noise = b.own
    k = b.context.long().sum(1)
    prefix = b.context[:, 0] & (b.context.long().cumprod(1).sum(1) == k)
    assert torch.equal(count > 0, prefix & (k >= 2))  # p = 1: every prefix context of >= 2 frames, nothing else
    assert (count <= torch.minimum(k - 1, torch.full_like(k, 2))).all() and (count == 2).any()
    assert noise.shape == (64, 6, 3, 4, 4)
    assert torch.equal(b.rows(slice(1, None, 2)).own[0], count[1::2])
    with pytest.raises(ConfigError, match="frames"):
        OwnContextConfig(p=0.5, frames=0)


def test_own_context_replaces_trailing_context_with_the_rollout_sample():
    net = _live_model()
    den = D.EDMDenoiser(net)
    x = torch.rand(3, 5, 3, 16, 16) * 2 - 1
    context = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    count = torch.tensor([1, 2, 0])
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    net.train()
    out = own_context(den, x, None, context, count, noise, 3, D.EDMConfig())
    assert net.training  # restored
    assert torch.equal(out[0, [0, 1, 3, 4]], x[0, [0, 1, 3, 4]]) and torch.equal(out[2], x[2])
    assert torch.equal(out[1, [0, 1, 4]], x[1, [0, 1, 4]])
    changed = [(0, 2), (1, 2), (1, 3)]
    assert all((out[b, t] - x[b, t]).abs().amax() > 0.05 for b, t in changed)
    # Each made frame is exactly what a rollout step makes from the frames before it (already made ones included).
    net.eval()
    for b, t in changed:
        plan = plans.autoregressive(3, t + 1, context=t)
        clip = out[b:b + 1, :t + 1].clone()
        clip[:, t] = noise[b, t] * plan[0, t]
        expected = quantize(D.sample_euler(den, clip, plan)[:, t])
        assert torch.allclose(out[b, t], expected[0], atol=1e-6)
        assert torch.allclose(out[b, t], quantize(out[b, t]))  # handed on as 8-bit frames, as a rollout does


def test_loss_with_own_context_scores_the_recorded_frames_and_trains():
    net = _live_model()
    net.train()
    den = D.EDMDenoiser(net)
    x = _moving_square_clip().expand(4, -1, -1, -1, -1).contiguous()
    cfg = D.LossConfig(p_context=1.0, patterns=("first_k",), context_sigma=0.0,
                       own_context=OwnContextConfig(p=1.0, frames=1))
    drawn = draw(tuple(x.shape), cfg, torch.Generator().manual_seed(1))
    assert (drawn.own[0] > 0).any()
    value = D.loss(den, x, cfg=cfg, drawn=drawn)
    value.backward()
    assert torch.isfinite(value) and net.training
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    plain = D.loss(den, x, cfg=cfg, drawn=dataclasses.replace(drawn, own=None))
    assert not torch.isclose(value, plain)  # the network saw different context


def test_uncaptioned_draw_takes_captions_from_context_clips_only():
    """`p_uncaptioned`: clips given context lose their caption (rollouts are given none), text-only clips keep
    theirs, and runs without it keep every draw they had."""
    shape = (64, 6, 3, 4, 4)
    a = draw(shape, D.LossConfig(p_context=0.5), torch.Generator().manual_seed(0))
    b = draw(shape, D.LossConfig(p_context=0.5, p_uncaptioned=1.0), torch.Generator().manual_seed(0))
    c = draw(shape, D.LossConfig(p_context=0.5, p_uncaptioned=0.5), torch.Generator().manual_seed(0))
    assert a.uncaptioned is None
    assert torch.equal(a.sigma, b.sigma) and torch.equal(a.noise, b.noise) and torch.equal(a.context, b.context)
    has_context = b.context.any(1)
    assert has_context.any() and (~has_context).any()
    assert torch.equal(b.uncaptioned, has_context)  # p = 1: every clip with context, no text-only clip
    assert (c.uncaptioned <= has_context).all() and 0 < c.uncaptioned.sum() < has_context.sum()
    assert torch.equal(b.rows(slice(1, None, 2)).uncaptioned, b.uncaptioned[1::2])
    with pytest.raises(ConfigError, match="p_uncaptioned"):
        D.LossConfig(p_uncaptioned=1.5)


def test_shared_sigma_draw_gives_a_clips_noisy_frames_one_level():
    """`p_shared_sigma`: the chosen clips' noisy frames share one level (what a sampler gives frames it makes
    together), context frames keep their own small levels, other clips stay independent, and runs without it keep
    every draw they had."""
    shape = (64, 6, 3, 4, 4)
    a = draw(shape, D.LossConfig(p_context=0.5), torch.Generator().manual_seed(0))
    b = draw(shape, D.LossConfig(p_context=0.5, p_shared_sigma=1.0), torch.Generator().manual_seed(0))
    c = draw(shape, D.LossConfig(p_context=0.5, p_shared_sigma=0.5), torch.Generator().manual_seed(0))
    assert torch.equal(a.noise, b.noise) and torch.equal(a.context, b.context)
    assert torch.equal(a.sigma[a.context], b.sigma[b.context])  # context levels untouched
    for d in (b, c):
        noisy = d.sigma.masked_fill(d.context, float("nan"))
        spread = noisy.nan_to_num(0).amax(1) - noisy.nan_to_num(float("inf")).amin(1)    # (B,)
        one = spread == 0
        for row in range(len(one)):  # each clip's shared level is one it drew itself
            if one[row] and (~d.context[row]).sum() > 1:
                assert d.sigma[row][~d.context[row]][0] in a.sigma[row]
        if d is b:
            assert one.all()
        else:
            assert 0 < one.sum() < len(one) and (spread > 0).any()
    with pytest.raises(ConfigError, match="p_shared_sigma"):
        D.LossConfig(p_shared_sigma=-0.1)


def test_pyramid_draw_gives_a_clips_noisy_frames_one_row_of_a_pyramid_over_the_schedule():
    """`p_pyramid`: the chosen clips' noisy frames are each 1/n of the sampling schedule noisier than the one before
    (a row of a pyramid spanning it once, none clamped at its ends), cleanest first; context levels and the other
    draws are untouched, and clips not chosen keep their independent levels."""
    shape = (256, 8, 3, 4, 4)
    cfg = D.LossConfig(p_context=0.5)
    a = draw(shape, cfg, torch.Generator().manual_seed(0))
    b = draw(shape, D.LossConfig(p_context=0.5, p_pyramid=1.0), torch.Generator().manual_seed(0))
    c = draw(shape, D.LossConfig(p_context=0.5, p_pyramid=0.5), torch.Generator().manual_seed(0))
    assert torch.equal(a.noise, b.noise) and torch.equal(a.context, b.context)
    assert torch.equal(a.sigma[a.context], b.sigma[b.context])
    e = cfg.edm
    hi, lo = e.sigma_max ** (1 / e.rho), e.sigma_min ** (1 / e.rho)
    place = (b.sigma.double() ** (1 / e.rho) - hi) / (lo - hi)                      # 0: sigma_max, 1: sigma_min
    for row in range(shape[0]):
        u = place[row][~b.context[row]]                                            # the noisy frames, in order
        n = len(u)
        assert ((u > 0) & (u <= 1 + 1e-6)).all()
        assert torch.allclose(u[:-1] - u[1:], torch.full((n - 1,), 1 / n, dtype=u.dtype), atol=1e-4)
        assert 1 - 1 / n - 1e-4 <= u[0] <= 1 + 1e-6                                # the first within a lag of clean
    changed = (c.sigma != a.sigma).any(1)
    assert 0 < changed.sum() < shape[0]
    assert torch.equal(c.sigma[~changed], a.sigma[~changed])
    only = draw(shape, D.LossConfig(p_context=0.5, p_pyramid=1.0, pyramid_clips="no_context"),
                torch.Generator().manual_seed(0))
    bare = ~a.context.any(1)                                                        # clips given no context frame
    assert bare.any() and (~bare).any()
    assert torch.equal(only.sigma[bare], b.sigma[bare]) and torch.equal(only.sigma[~bare], a.sigma[~bare])
    with pytest.raises(ConfigError, match="p_pyramid"):
        D.LossConfig(p_pyramid=2.0)
    with pytest.raises(ConfigError, match="pyramid_clips"):
        D.LossConfig(pyramid_clips="context")


def test_loss_withholds_the_drawn_captions():
    net = _live_model()  # eval mode: no condition dropout, so the captions alone decide the text
    den = D.EDMDenoiser(net)
    x = _moving_square_clip(4).expand(4, -1, -1, -1, -1).contiguous()
    caps = ["a red square moving right", "a red square", "a square moving right", "red"]
    cfg = D.LossConfig(p_context=1.0, patterns=("first_k",), p_uncaptioned=0.5)
    drawn = draw(tuple(x.shape), cfg, torch.Generator().manual_seed(2))
    bare = drawn.uncaptioned.tolist()
    assert any(bare) and not all(bare), bare
    value = D.loss(den, x, Cond(text=caps), cfg=cfg, drawn=drawn)
    kept = dataclasses.replace(drawn, uncaptioned=None)
    withheld = [None if w else t for t, w in zip(caps, bare)]
    assert torch.allclose(value, D.loss(den, x, Cond(text=withheld), cfg=cfg, drawn=kept))
    assert not torch.isclose(value, D.loss(den, x, Cond(text=caps), cfg=cfg, drawn=kept))  # the captions counted
    with pytest.raises(ConfigError, match="one caption per clip"):
        Cond(text=caps[:3]).withhold_text(drawn.uncaptioned)


# -- plans ------------------------------------------------------------------------------------------------------

def _all_plans(steps=4, frames=6):
    return {
        "t2v": (plans.t2v(steps, frames), []),
        "i2v": (plans.i2v(steps, frames), [0]),
        "extend_forward": (plans.extend(steps, frames, 2), [0, 1]),
        "extend_backward": (plans.extend(steps, frames, 2, "backward"), [4, 5]),
        "connect": (plans.connect(steps, frames, 2, 1), [0, 1, 5]),
        "loop": (plans.loop(steps, frames), []),
        "loop_given": (plans.loop(steps, frames, given_first=True), [0, 5]),
        "autoregressive": (plans.autoregressive(steps, frames, 3), [0, 1, 2]),
        "edit": (plans.edit(steps, frames, 1.5, context=1), [0]),
        "preview": (plans.preview(steps, frames), []),
    }


def test_stairs_denoise_one_frame_at_a_time_outward_from_the_given():
    """A whole rollout as one plan: each row moves exactly one frame, frames finish in order (forward: left to right;
    backward: right to left, mirrored), each through the full per-frame schedule, the others waiting at full noise."""
    col = plans.karras_sigmas(3)
    for direction, given, order in (("forward", [0, 1], [2, 3, 4, 5]), ("backward", [4, 5], [3, 2, 1, 0])):
        p = plans.stairs(3, 6, 2, direction)
        plans.check(p, 6)
        assert p.shape == (4 * 3 + 1, 6) and (p[:, given] == 0).all()
        moving = [(p[i + 1] != p[i]).nonzero().flatten().tolist() for i in range(len(p) - 1)]
        assert moving == [[t] for t in order for _ in range(3)]
        for j, t in enumerate(order):
            assert torch.equal(p[3 * j : 3 * j + 4, t], col) and (p[: 3 * j, t] == col[0]).all()
    assert torch.equal(plans.stairs(3, 6, 2, "backward"), plans.stairs(3, 6, 2).flip(1))
    with pytest.raises(ConfigError) as e:
        plans.stairs(3, 6, 2, "sideways")
    assert e.value.field == "direction"


def test_plans_have_one_column_per_frame_and_zeros_where_given():
    for name, (plan, given) in _all_plans().items():
        assert plan.shape == (5, 6), name
        plans.check(plan, 6)
        assert (plan[:, given] == 0).all(), name
        free = [t for t in range(6) if t not in given]
        assert (plan[0, free] > 0).all() and (plan[-1, free] == 0).all(), name
    assert plans.edit(4, 6, 1.5)[0, 0] == pytest.approx(1.5)
    assert plans.t2v(4, 6)[0, 0] == pytest.approx(80.0)
    assert (plans.autoregressive(4, 6, 2, context_sigma=0.05)[:, :2] == 0.05).all()
    assert set(plans.MODES) <= {n.split("_")[0] if n != "extend_forward" else "extend" for n in _all_plans()} | {
        "extend"}


def test_bad_plans_raise():
    with pytest.raises(ConfigError):
        plans.i2v(0, 4)
    with pytest.raises(ConfigError) as e:
        plans.extend(4, 4, 4)
    assert e.value.field == "frames"
    with pytest.raises(ConfigError) as e:
        plans.extend(4, 4, 1, "sideways")
    assert e.value.field == "direction"
    with pytest.raises(ConfigError):
        plans.check(torch.tensor([[0.0, 1.0], [1.0, 0.0]]), 2)  # rises
    with pytest.raises(ConfigError):
        D.sample_euler(lambda x, s, c: x, torch.zeros(1, 3, 1, 2, 2), plans.t2v(2, 4))  # wrong frame count


# -- samplers ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sampler", ["euler", "heun", "euler_a"])
def test_given_frames_come_back_exactly_for_every_plan(sampler):
    m = _live_model(action_dim=2)
    den = D.EDMDenoiser(m)
    x0 = torch.rand(2, 6, 3, 8, 8) * 2 - 1
    cond = Cond(actions=torch.randn(2, 6, 2), text=["a", "b"])
    for name, (plan, given) in _all_plans(steps=3).items():
        known = torch.zeros_like(x0)
        known[:, given] = x0[:, given]
        start = plans.initial(known, plan, torch.Generator().manual_seed(1))
        extra = {"causal": False} if name in ("extend_backward", "connect", "loop_given") else None
        out = D.SAMPLERS[sampler](den, start, plan, cond, guidance={"text": 2.0, "actions": 1.5}, extra_args=extra)
        assert torch.equal(out[:, given], x0[:, given]), name
        assert torch.isfinite(out).all(), name


def _seeded(seed: int):
    g = torch.Generator().manual_seed(seed)
    return lambda shape: torch.randn(shape, generator=g)


def _gaussian_denoiser(mu: float, s0: float):
    """The exact denoiser for data ~ N(mu, s0^2) per pixel: E[x0 | x] = mu + s0^2 / (s0^2 + sigma^2) (x - mu)."""
    def den(x, sigma, cond=None):
        s2 = sigma[:, :, None, None, None] ** 2
        return mu + s0 ** 2 / (s0 ** 2 + s2) * (x - mu)
    return den


@pytest.mark.parametrize("sampler,steps", [("euler", 256), ("heun", 32), ("euler_a", 1024)])
def test_sampler_with_exact_denoiser_recovers_the_gaussian(sampler, steps):
    """(Euler ancestral is first order in its noise too: 256 steps leave its std 3% short, 1,024 under 1%.)"""
    mu, s0 = 0.3, 0.2
    plan = plans.t2v(steps, 2)
    x = plans.initial(torch.zeros(4000, 2, 1, 2, 2), plan, torch.Generator().manual_seed(0))
    out = D.SAMPLERS[sampler](_gaussian_denoiser(mu, s0), x, plan, noise=_seeded(1))
    assert out.mean().item() == pytest.approx(mu, abs=0.005)
    assert out.std().item() == pytest.approx(s0, rel=0.03)


def test_heun_is_more_accurate_than_euler_at_equal_steps():
    """Second order: at 32 steps Heun's error in the std is about a fifth of Euler's."""
    mu, s0 = 0.3, 0.2
    plan = plans.t2v(32, 1)
    x = plans.initial(torch.zeros(4000, 1, 1, 2, 2), plan, torch.Generator().manual_seed(0))
    err = {n: abs(D.SAMPLERS[n](_gaussian_denoiser(mu, s0), x, plan).std().item() - s0) for n in ("euler", "heun")}
    assert err["heun"] < err["euler"] / 3


def test_sampler_with_exact_denoiser_recovers_two_clips():
    """Data: two clips, +a and -a everywhere, equally likely. The exact denoiser is a softmax over them; sampling
    must land every sample on one of the two, half on each."""
    pts = torch.stack([torch.full((3, 1, 2, 2), 0.8), torch.full((3, 1, 2, 2), -0.8)])  # (K, T, C, H, W)

    def den(x, sigma, cond=None):
        s2 = sigma[:, None, :, None, None, None] ** 2
        logw = -((x[:, None] - pts[None]) ** 2 / (2 * s2)).sum(dim=(2, 3, 4, 5))          # (B, K)
        return torch.einsum("bk,ktchw->btchw", logw.softmax(1), pts)

    plan = plans.t2v(16, 3)
    out = D.sample_heun(den, plans.initial(torch.zeros(2000, 3, 1, 2, 2), plan, torch.Generator().manual_seed(0)),
                        plan)
    assert torch.allclose(out.abs(), torch.full_like(out, 0.8), atol=1e-4)
    assert 0.45 < (out.mean((1, 2, 3, 4)) > 0).float().mean() < 0.55


def test_ancestral_sampler_draws_its_noise_only_from_noise():
    """A rollout's frames must be a function of its seed: the same `noise` draws give the same sample, others not,
    and the deterministic samplers never call it."""
    mu, s0 = 0.3, 0.2
    plan = plans.autoregressive(3, 2, 1, cfg=D.EDMConfig(sigma_max=10.0))
    x = plans.initial(torch.zeros(8, 2, 1, 2, 2), plan, torch.Generator().manual_seed(0))
    den = _gaussian_denoiser(mu, s0)
    one = D.sample_euler_ancestral(den, x, plan, noise=_seeded(1))
    assert torch.equal(one, D.sample_euler_ancestral(den, x, plan, noise=_seeded(1)))
    assert not torch.equal(one, D.sample_euler_ancestral(den, x, plan, noise=_seeded(2)))
    assert torch.equal(one[:, 0], x[:, 0])  # the given frame

    def never(shape):
        raise AssertionError("a deterministic sampler drew noise")

    for name in ("euler", "heun"):
        D.SAMPLERS[name](den, x, plan, noise=never)


def test_guidance_scales_per_group_and_callback():
    calls = []

    class C:
        def __init__(self, null=()):
            self.null = set(null)

        def without(self, g):
            return C(self.null | {g})

    def den(x, sigma, cond):  # text adds 1, actions add 10, when present
        return x * 0 + (0 if "text" in cond.null else 1.0) + (0 if "actions" in cond.null else 10.0)

    x = torch.zeros(1, 2, 1, 2, 2)
    s = torch.ones(1, 2)
    assert D.guided(den, x, s, C(), None).unique().item() == 11.0
    assert D.guided(den, x, s, C(), {"text": 3.0}).unique().item() == 11.0 + 2 * 1.0
    assert D.guided(den, x, s, C(), {"text": 3.0, "actions": 2.0}).unique().item() == 11.0 + 2 + 10
    with pytest.raises(ConfigError) as e:
        D.guided(den, x, s, None, {"text": 2.0})
    assert e.value.field == "guidance"
    D.sample_euler(den, x, plans.t2v(5, 2), C(), callback=calls.append)
    assert [c["i"] for c in calls] == list(range(5)) and calls[0]["steps"] == 5


def test_tied_frames_end_identical():
    m = _live_model()
    den = D.tie_frames(D.EDMDenoiser(m), [(0, -1)])
    plan = plans.loop(4, 5)
    out = D.sample_heun(den, plans.initial(torch.zeros(1, 5, 3, 8, 8), plan, torch.Generator().manual_seed(0)),
                        plan, extra_args={"causal": False})
    torch.testing.assert_close(out[:, 0], out[:, -1], atol=1e-5, rtol=0)
    assert not torch.allclose(out[:, 0], out[:, 1])


def test_kept_blocks_land_the_sample_on_the_reference_block_means():
    """`keep_blocks` (preview's render): each estimate's 2x2 block means are the reference's, so the sample, which
    lands on its last estimate, has exactly the reference's block means and its own detail within blocks."""
    from worldsim.diffusion.sampling import block_means, keep_blocks

    m = _live_model()
    g = torch.Generator().manual_seed(0)
    ref = torch.rand(1, 3, 3, 8, 8, generator=g) * 2 - 1
    plan = plans.edit(4, 3, sigma_start=1.0)
    x0 = plans.initial(ref, plan, g)
    free = D.sample_euler(D.EDMDenoiser(m), x0, plan)
    kept = D.sample_euler(keep_blocks(D.EDMDenoiser(m), ref, (2, 2)), x0, plan)
    torch.testing.assert_close(block_means(kept, (2, 2)), block_means(ref, (2, 2)), atol=1e-5, rtol=0)
    assert (block_means(free, (2, 2)) - block_means(ref, (2, 2))).abs().mean() > 0.05  # SDEdit alone drifts
    assert (kept - block_means(kept, (2, 2))).abs().mean() > 1e-3  # detail of its own within the blocks
    wide = D.sample_euler(keep_blocks(D.EDMDenoiser(m), ref, (1, 4)), x0, plan)  # blocks need not be square
    torch.testing.assert_close(block_means(wide, (1, 4)), block_means(ref, (1, 4)), atol=1e-5, rtol=0)


# -- does it really learn ---------------------------------------------------------------------------------------

H, T = 8, 4
STEER_STEPS = 400


def _clip(dx: int, dy: int = 0) -> torch.Tensor:
    """A bright 4x4 square on a dark 8x8 frame moving dx, dy pixels a frame (all clips share frame 0)."""
    x = torch.full((T, 3, H, H), -0.8)
    for t in range(T):
        r, c = 2 + dy * t, 2 + dx * t
        x[t, :, r:r + 4, c:c + 4] = 0.8
    return x


def _train(model, den, clips, cond, steps, cfg, lr=3e-3, seed=0):
    """Adam with the learning rate decayed linearly to 0 (the last steps settle instead of rattling)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0 - i / steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        loss = D.loss(den, clips, cond, cfg=cfg, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def test_overfits_one_clip():
    """Fixed steps on one clip (all frames noisy) take the fixed-grid loss to <= 0.1x its start. 2x2 patches: on
    8x8 frames they give 16 tokens a frame, each a small target (4x4 patches: 4 tokens, learned ~3x slower)."""
    torch.manual_seed(0)
    m = build_model("debug", cond_dropout=0.0, patch=(1, 2, 2))
    edm = D.EDMConfig(p_mean=0.0)  # the grid then spans sigma 0.09 .. 11, from fine detail to pure noise
    den, cfg = D.EDMDenoiser(m, edm), D.LossConfig(edm=edm, p_context=0.0)
    clip = _clip(1)[None]
    before = D.fixed_grid_loss(den, clip, cfg=cfg).item()
    _train(m, den, clip.repeat(8, 1, 1, 1, 1), None, 400, cfg)
    after = D.fixed_grid_loss(den, clip, cfg=cfg).item()
    assert after <= 0.1 * before, (before, after)


@pytest.fixture(scope="module")
def steered():
    return _steered(STEER_STEPS)


def _steered(steps: int):
    """One debug model overfit to four clips with a shared first frame: two differ only in their actions (caption
    the same), two only in their captions (actions the same)."""
    torch.manual_seed(0)
    m = build_model("debug", action_dim=1, cond_dropout=0.0, patch=(1, 2, 2))
    edm = D.EDMConfig(p_mean=0.0)
    den = D.EDMDenoiser(m, edm)
    clips = torch.stack([_clip(1), _clip(-1), _clip(0, 1), _clip(0, -1)])
    acts = torch.tensor([1.0, -1.0, 0.0, 0.0])[:, None, None].expand(4, T, 1)
    caps = ["the square moves", "the square moves", "the square moves down", "the square moves up"]
    # every clip with its first frame given: the world-model setting (a start frame, then what the actions say)
    cfg = D.LossConfig(edm=edm, p_context=1.0, patterns=("first",))
    _train(m, den, clips.repeat(2, 1, 1, 1, 1), Cond(actions=acts.repeat(2, 1, 1), text=caps * 2), steps, cfg)
    return den, clips, acts, caps


def _generate(den, clips, actions, captions):
    plan = plans.i2v(8, T)
    known = torch.zeros_like(clips)
    known[:, 0] = clips[:, 0]
    start = plans.initial(known, plan, torch.Generator().manual_seed(1))
    return D.sample_heun(den, start, plan, Cond(actions=actions, text=captions))


def _err(a, b):
    return (a - b).pow(2).mean(dim=(1, 2, 3, 4))


def test_actions_steer_the_model(steered):
    den, clips, acts, caps = steered
    own = _generate(den, clips[:2], acts[:2], caps[:2])
    swapped = _generate(den, clips[:2], acts[[1, 0]], caps[:2])
    e_own, e_swap = _err(own, clips[:2]), _err(swapped, clips[:2])
    assert (e_swap >= 10 * e_own).all(), (e_own, e_swap)


def test_next_frame_losses_tell_whether_actions_are_used(steered):
    den, clips, acts, caps = steered
    with_, without = D.next_frame_losses(den, clips[:2], Cond(actions=acts[:2], text=caps[:2]), levels=4)
    assert with_ < 0.5 * without, (with_, without)
    # A fresh network's output layer is zero: it ignores every condition, and the two losses agree exactly.
    torch.manual_seed(0)
    fresh = D.EDMDenoiser(build_model("debug", action_dim=1, patch=(1, 2, 2)), den.cfg)
    with_, without = D.next_frame_losses(fresh, clips[:2], Cond(actions=acts[:2], text=caps[:2]), levels=4)
    assert with_ > 0 and torch.equal(with_, without)


def test_captions_steer_the_model(steered):
    den, clips, acts, caps = steered
    own = _generate(den, clips[2:], acts[2:], caps[2:])
    swapped = _generate(den, clips[2:], acts[2:], [caps[3], caps[2]])
    e_own, e_swap = _err(own, clips[2:]), _err(swapped, clips[2:])
    assert (e_swap >= 10 * e_own).all(), (e_own, e_swap)

"""The video DiT: presets, shapes over sizes and aspects mixed in one batch, frame-causality, cached == uncached
rollout, per-frame modulation, conditioning inputs and their errors, the text tokenizer, and FLOP counts."""

from __future__ import annotations

import pytest
import torch

from worldsim.errors import ActionError, ConfigError
from worldsim.models import PRESETS, Cond, build_model, flops, get_preset, model_config, tokenize
from worldsim.models.text import detokenize




def _live(model, seed=0):
    """Random weights everywhere (adaLN-Zero starts every block as the identity and the output at 0, which would
    make every output test pass vacuously)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


HISTORIES = [{}, {"history": 2}, {"history": 2, "history_halo": 2}, {"history": 2, "history_halo": 1, "action_warp": True}]


def _model(**kw):
    torch.manual_seed(0)
    return _live(build_model("debug", **kw))


def test_presets_report_params_and_flops():
    expect_width_depth = {"S": (384, 12), "B": (768, 12), "L": (1024, 24)}
    counts = {}
    for name, preset in PRESETS.items():
        with torch.device("meta"):  # sizes only: L would take seconds and gigabytes to initialise for real
            m = build_model(name)
        counts[name] = sum(p.numel() for p in m.parameters())
        assert flops.per_frame(m, preset.size) > 0
        if name in expect_width_depth:
            assert (m.cfg.width, m.cfg.depth) == expect_width_depth[name]
    assert counts["debug"] < counts["tiny"] < counts["S"] < counts["B"] < counts["L"]
    assert 30e6 < counts["S"] < 40e6 and 430e6 < counts["L"] < 500e6  # DiT-S has 33M, DiT-L 458M


def test_unknown_preset_and_field():
    with pytest.raises(ConfigError) as e:
        build_model("XL")
    assert e.value.field == "preset" and "debug" in e.value.message
    with pytest.raises(ConfigError) as e:
        model_config("debug", widht=3)
    assert e.value.field == "widht"
    with pytest.raises(ConfigError) as e:
        model_config("debug", heads=3)
    assert e.value.field == "heads"


def test_flops_count_matches_the_formula():
    """2 x weights x tokens for the token path: D=64, P=48, depth 2, MLP 4x (full attention)."""
    m = build_model("debug")
    D, P, L = 64, 48, 2
    per_token = P * D + L * (4 * D * D + 8 * D * D) + D * P
    f = flops.count(m, batch=2, size=(4, 16, 16))
    assert f.per_token_params == per_token
    tokens = 2 * 4 * 16
    assert f.attention == 4.0 * D * 2 * (4 * 5 / 2) * 16 ** 2 * L  # frame-causal: 10 of 16 frame pairs
    assert flops.count(build_model("debug", causal=False), 2, (4, 16, 16)).attention == 4.0 * D * 2 * 64 ** 2 * L
    assert f.train == 3 * (f.matmul + f.attention)
    assert f.matmul >= 2.0 * per_token * tokens


@pytest.mark.parametrize("attention", ["full", "factorised"])
def test_shapes_over_sizes_and_aspects_mixed_in_one_batch(attention):
    m = _model(attention=attention, action_dim=2)
    sizes = [(4, 16, 16), (2, 8, 24), (4, 16, 16), (3, 24, 8), (1, 4, 4)]
    videos = [torch.randn(T, 3, H, W) for T, H, W in sizes]
    noise = [torch.rand(T) for T, _, _ in sizes]
    conds = [Cond(actions=torch.randn(1, T, 2), text=["a ball"]) for T, _, _ in sizes]
    out = m.forward_list(videos, noise, conds)
    assert [tuple(o.shape) for o in out] == [tuple(v.shape) for v in videos]
    for i in (1, 3):  # the bucketed result equals running that clip alone
        alone = m(videos[i][None], noise[i][None], conds[i])[0]
        torch.testing.assert_close(out[i], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("history", HISTORIES)
@pytest.mark.parametrize("attention", ["full", "factorised"])
def test_causal_outputs_ignore_later_frames(attention, history):
    m = _model(attention=attention, action_dim=2, **history)
    x, s, a = torch.randn(2, 6, 3, 8, 8), torch.rand(2, 6), torch.randn(2, 6, 2)
    y = m(x, s, Cond(actions=a))
    for t in (0, 2, 4):
        x2, s2, a2 = x.clone(), s.clone(), a.clone()
        x2[:, t + 1:] += torch.randn_like(x2[:, t + 1:])
        s2[:, t + 1:] += 1.0
        a2[:, t + 1:] += 1.0
        y2 = m(x2, s2, Cond(actions=a2))
        assert torch.equal(y2[:, : t + 1], y[:, : t + 1])
        assert not torch.allclose(y2[:, t + 1:], y[:, t + 1:])
    # the same model without the mask does look ahead (so the test above can fail)
    y3 = m(x2, s2, Cond(actions=a2), causal=False)
    assert not torch.allclose(y3[:, :1], m(x, s, Cond(actions=a), causal=False)[:, :1])


@pytest.mark.parametrize("history", HISTORIES)
@pytest.mark.parametrize("attention", ["full", "factorised"])
def test_cached_forward_equals_uncached(attention, history):
    m = _model(attention=attention, action_dim=2, param_dim=1, **history)
    x, s = torch.randn(2, 6, 3, 8, 8), torch.rand(2, 6)
    cond = Cond(actions=torch.randn(2, 6, 2), params=torch.randn(2, 1), text=["red ball", "two balls"])
    full = m(x, s, cond)
    cache = m.new_cache()
    m(x[:, :3], s[:, :3], cond.frames(0, 3), cache=cache, write_cache=True)      # prefill the context
    one = m(x[:, 3:4], s[:, 3:4], cond.frames(3, 4), cache=cache, write_cache=True)  # one frame at a time
    torch.testing.assert_close(one, full[:, 3:4], atol=1e-5, rtol=1e-5)
    two = m(x[:, 4:6], s[:, 4:6], cond.frames(4, 6), cache=cache)                # several new frames at once
    torch.testing.assert_close(two, full[:, 4:6], atol=1e-5, rtol=1e-5)
    assert cache.frames == 4
    # positions are relative: the same rollout started at frame 1000 gives the same frames (endless rollouts)
    late = m.new_cache()
    late.frames = 1000
    m(x[:, :3], s[:, :3], cond.frames(0, 3), cache=late, write_cache=True)
    torch.testing.assert_close(m(x[:, 3:4], s[:, 3:4], cond.frames(3, 4), cache=late), one, atol=1e-4, rtol=1e-4)
    # a sliding window keeps the last frames' keys and values only
    m.trim_cache(cache, 2)
    assert cache.cached == 2 and cache.frames == 4
    k = cache.layers[0][0]
    assert k.shape[2] == (2 * 4 if attention == "full" else 2)  # full: frames x 4 tokens; factorised: frames
    assert m(x[:, 4:5], s[:, 4:5], cond.frames(4, 5), cache=cache).shape == (2, 1, 3, 8, 8)


def test_future_embeds_the_next_frames_in_bidirectional_calls_only():
    """With `future=2` a bidirectional call adds an embedding of frames t+1 and t+2 (zeros after the clip); a causal
    call never reads them (so rollouts and their cache are unchanged), and at init the embedding is zero."""
    m = _model(history=2, future=2)
    x, s = torch.randn(2, 5, 3, 8, 8), torch.rand(2, 5)
    nxt = m._next_frames(x)                                                        # (B, T, 6, H, W)
    for t in range(5):
        for j in (1, 2):
            want = x[:, t + j] if t + j < 5 else torch.zeros_like(x[:, 0])
            assert torch.equal(nxt[:, t, 3 * (j - 1):3 * j], want), (t, j)
    assert not build_model("debug", future=2).embed_future.weight.any()  # zero at init
    plain = _model(history=2)
    plain.load_state_dict({k: v for k, v in m.state_dict().items() if k != "embed_future.weight"})
    with torch.no_grad():
        m.embed_future.weight.zero_()
    torch.testing.assert_close(m(x, s, causal=False), plain(x, s, causal=False))  # zero: the network without it
    with torch.no_grad():
        m.embed_future.weight.normal_()
    assert not torch.allclose(m(x, s, causal=False), plain(x, s, causal=False))  # now bidirectional calls read it
    assert torch.equal(m(x, s), plain(x, s))  # causal calls never do
    with pytest.raises(ConfigError) as e:
        build_model("debug", future=1, patch=(2, 4, 4))
    assert e.value.field == "future"


def test_history_stacks_the_previous_frames_pixels():
    """With `history=2` each frame's input holds its own pixels, then frame t-1's and t-2's (zeros before the clip;
    with a cache, the last frames written), and the embedding reads all of them."""
    m = _model(history=2)
    assert m.embed.in_features == 3 * m.cfg.patch_dim
    x = torch.randn(2, 5, 3, 8, 8)
    stacked = m._stack_history(x, None, False)                                     # (B, T, 9, H, W)
    assert stacked.shape == (2, 5, 9, 8, 8)
    for t in range(5):
        assert torch.equal(stacked[:, t, :3], x[:, t])
        for j in (1, 2):
            want = x[:, t - j] if t - j >= 0 else torch.zeros_like(x[:, 0])
            assert torch.equal(stacked[:, t, 3 * j:3 * j + 3], want), (t, j)
    cache = m.new_cache()
    m(x[:, :3], torch.zeros(2, 3), cache=cache, write_cache=True)
    assert torch.equal(cache.history, x[:, 1:3])
    assert torch.equal(m._stack_history(x[:, 3:], cache, False), stacked[:, 3:])
    with pytest.raises(ConfigError) as e:
        build_model("debug", history=1, patch=(2, 4, 4))
    assert e.value.field == "history"


def test_history_halo_widens_each_tokens_view_of_the_past():
    """With `history_halo=a` a token reads the previous frames' pixels up to a px outside its patch (zeros beyond the
    frame), and nothing further out; its own frame is still its patch only."""
    a = 2
    m = _model(history=1, history_halo=a)
    assert m.embed.in_features == m.cfg.patch_dim + 3 * (4 + 2 * a) ** 2
    x = torch.randn(1, 2, 3, 8, 8)
    tokens = m._tokens(x, None, False)                                              # (1, 2 * 4, D)
    token = 4 + 3  # frame 1, patch (1, 1): pixels [4, 8) x [4, 8)
    for (r, c), seen in (((4 - a, 5), True), ((4 - a - 1, 5), False), ((7, 7), True), ((3, 3), True)):
        x2 = x.clone()
        x2[0, 0, :, r, c] += 1.0  # frame 0 is frame 1's history
        changed = (m._tokens(x2, None, False) != tokens).any(-1)[0]
        assert bool(changed[token]) == seen, (r, c)
        own = torch.zeros(4, dtype=torch.bool)
        own[(r // 4) * 2 + c // 4] = True
        assert torch.equal(changed[:4], own)  # frame 0's tokens: only the patch holding the pixel (no halo of x)
    x3 = x.clone()
    x3[0, 1, :, 0, 7] += 1.0  # frame 1's own pixel, outside patch (1, 1)
    assert not (m._tokens(x3, None, False) != tokens).any(-1)[0, token]
    corner = tokens[0, 4, m.cfg.patch_dim:].view(3, 4 + 2 * a, 4 + 2 * a)          # patch (0, 0) of frame 1
    assert not corner[:, :a].any() and not corner[:, :, :a].any()  # outside the frame: zeros
    torch.testing.assert_close(corner[:, a:a + 4, a:a + 4], x[0, 0, :, :4, :4])
    with pytest.raises(ConfigError) as e:
        build_model("debug", history_halo=2)
    assert e.value.field == "history_halo"


def test_each_frame_is_modulated_by_its_own_noise_level():
    m = _model(causal=False)
    x, s = torch.randn(1, 4, 3, 8, 8), torch.rand(1, 4)
    y = m(x, s)
    s2 = s.clone()
    s2[0, 2] += 0.5
    y2 = m(x, s2)
    change = (y2 - y).abs().flatten(2).max(-1).values[0]  # per frame
    assert change[2] > 10 * change[[0, 1, 3]].max()  # frame 2 moves most; others only through attention


def test_conditions_change_the_output_and_nulls_are_learned():
    m = _model(action_dim=2, action_classes=5, camera_classes=3, camera_dim=4, param_dim=2)
    x, s = torch.randn(2, 3, 3, 8, 8), torch.rand(2, 3)
    cond = Cond(actions=torch.randn(2, 3, 2), action_ids=torch.randint(5, (2, 3)), camera_ids=torch.tensor(
        [[0, 1, 2], [2, 2, 0]]), camera=torch.randn(2, 3, 4), params=torch.randn(2, 2), text=["up", "down"])
    y = m(x, s, cond)
    for group in ("actions", "camera", "params", "text"):
        assert not torch.allclose(m(x, s, cond.without(group)), y), group
    # a nulled group equals an absent one
    torch.testing.assert_close(m(x, s, cond.without("text")), m(x, s, Cond(
        actions=cond.actions, action_ids=cond.action_ids, camera=cond.camera, camera_ids=cond.camera_ids,
        params=cond.params)))
    # a clip without a caption (None) gets the text's null; the other clips of the batch keep theirs
    part = m(x, s, Cond(text=["up", None]))
    torch.testing.assert_close(part[1], m(x, s, Cond(text=["up", "down"]).without("text"))[1])
    torch.testing.assert_close(part[0], m(x, s, Cond(text=["up", "down"]))[0])
    assert not torch.allclose(part[1], m(x, s, Cond(text=["up", ""]))[1])  # not the empty caption
    # the time direction (a model trained on reversed clips): zero at init, an input once trained, forward by default
    assert not build_model("debug", time_reversal=True).cond.direction.weight.any()
    r = _model(time_reversal=True)  # perturbed as if trained
    back = Cond(reversed=torch.tensor([True, False]))
    yr, yf = r(x, s, back), r(x, s, Cond())
    torch.testing.assert_close(yr[1], yf[1])
    assert not torch.allclose(yr[0], yf[0])
    with pytest.raises(ConfigError, match="reversed"):
        m(x, s, back)
    # condition dropout in training replaces groups by their nulls (p close to 1: nearly always)
    m2 = _model(action_dim=2, cond_dropout=0.999).train()
    c2 = Cond(actions=torch.randn(2, 3, 2), text=["up", "down"])
    torch.testing.assert_close(m2(x, s, c2), m2(x, s, Cond()))
    assert not torch.allclose(m2.eval()(x, s, c2), m2(x, s, Cond()))


def test_bad_inputs_raise_clear_errors():
    m = _model(action_dim=2, param_dim=3, action_classes=4)
    x, s = torch.randn(1, 4, 3, 8, 8), torch.rand(1, 4)
    with pytest.raises(ConfigError) as e:
        m(torch.randn(1, 4, 4, 8, 8), s)
    assert e.value.field == "x" and "channels" in e.value.message and e.value.source == "VideoDiT(debug)"
    with pytest.raises(ConfigError) as e:
        m(torch.randn(1, 4, 3, 10, 8), s)
    assert e.value.field == "x" and "divisible" in e.value.message
    with pytest.raises(ConfigError) as e:
        m(x, torch.rand(1, 3))
    assert e.value.field == "noise"
    with pytest.raises(ActionError) as e:
        m(x, s, Cond(actions=torch.randn(1, 4, 3)))
    assert e.value.field == "actions" and "(B, T, 2)" in e.value.message
    with pytest.raises(ActionError) as e:
        m(x, s, Cond(action_ids=torch.tensor([[0, 1, 4, 0]])))
    assert e.value.field == "action_ids"
    with pytest.raises(ConfigError) as e:
        m(x, s, Cond(params=torch.randn(1, 2)))
    assert e.value.field == "params"
    with pytest.raises(ConfigError) as e:
        m(x, s, Cond(camera=torch.randn(1, 4, 2)))
    assert e.value.field == "camera"
    with pytest.raises(ConfigError) as e:
        m(x, s, Cond(text=["a", "b"]))
    assert e.value.field == "text"
    with pytest.raises(ConfigError) as e:
        Cond().without("colour")
    assert e.value.field == "null"
    with pytest.raises(ConfigError) as e:
        _model(causal=False)(x, s, cache=m.new_cache())
    assert e.value.field == "cache"


def test_tokenizer_round_trip_and_cut():
    ids = tokenize(["a red ball", "", "é" * 100], max_len=16)
    assert ids.shape == (3, 16) and ids.dtype == torch.long
    assert detokenize(ids)[:2] == ["a red ball", ""]
    assert ids[1, :2].tolist() == [1, 2] and (ids[1, 2:] == 0).all()  # BOS, EOS, padding
    assert (ids[2] != 0).all()  # a long caption fills the window and is cut


def test_preset_sizes_are_divisible_by_their_patch():
    for name in PRESETS:
        p = get_preset(name)
        assert all(s % q == 0 for s, q in zip(p.size, p.config.patch)), name


def test_save_and_load_round_trip(tmp_path):
    from worldsim.errors import WeightsError
    from worldsim.models.load import load_model, save_model

    m = _model(action_dim=2, param_dim=1, text={"width": 32, "depth": 1, "heads": 2, "max_len": 64, "facts": 2})
    path = save_model(tmp_path / "m.safetensors", m, scene={"name": "bounce"}, loss={"context_sigma": 0.1})
    net, meta = load_model(path)
    assert net.cfg == m.cfg and meta["scene"]["name"] == "bounce"
    x, s = torch.randn(1, 2, 3, 8, 8), torch.rand(1, 2)
    c = Cond(actions=torch.randn(1, 2, 2), params=torch.randn(1, 1), text=["The red ball is at x 0.10 m, at rest."])
    assert torch.equal(net(x, s, c), m(x, s, c)) and net.cfg.text.facts == 2
    other = save_model(tmp_path / "o.safetensors", m, state=m.state_dict() | {"extra": torch.zeros(1)})
    with pytest.raises(WeightsError) as e:
        load_model(other)
    assert e.value.field == "tensors"

"""The action's spatial path (`DiTConfig.action_warp`, worldsim/models/warp.py): the translation itself, its use in
the network's tokens, fine-tuning onto weights without it, and that a toy world model learns the displacement its
actions command."""

from __future__ import annotations

import pytest
import torch

from worldsim import diffusion as D
from worldsim.errors import ConfigError
from worldsim.models import Cond, build_model
from worldsim.models.warp import ActionWarp, translate
from worldsim.training.module import initial_weights
from worldsim.models.load import save_model


def test_translate_moves_pixels_by_the_shift_and_passes_gradients():
    x = torch.zeros(1, 1, 1, 8, 8)
    x[0, 0, 0, 3, 3] = 1.0
    moved = translate(x, torch.tensor([[[2.0, 1.0]]]))                     # dx = 2 right, dy = 1 down
    assert moved[0, 0, 0, 4, 5] == pytest.approx(1.0) and moved.sum() == pytest.approx(1.0)
    half = translate(x, torch.tensor([[[0.5, 0.0]]]))[0, 0, 0, 3]          # bilinear: split between two columns
    assert half[3:5].tolist() == pytest.approx([0.5, 0.5]) and half.sum() == pytest.approx(1.0)
    shift = torch.tensor([[[0.25, 0.0]]], requires_grad=True)
    translate(x, shift)[0, 0, 0, 3, 4].backward()                          # more of the pixel arrives as dx grows
    assert shift.grad[0, 0, 0] == pytest.approx(1.0)  # d(value)/d(dx) on the linear piece: 1 a pixel


def test_warped_frame_is_the_previous_one_until_actions_move_it():
    warp = ActionWarp(2)
    prev = torch.randn(2, 3, 3, 8, 8)
    acts = torch.randn(2, 3, 2)
    assert torch.equal(warp(prev, acts), prev) and torch.equal(warp(prev, None), prev)   # zero at init
    with torch.no_grad():
        warp.shift.weight.copy_(torch.eye(2) * 0.25)                      # 1 px per unit action
    assert torch.allclose(warp.pixels(acts), acts)
    assert not torch.allclose(warp(prev, acts), prev) and torch.equal(warp(prev, None), prev)


def test_the_network_sees_the_warp_and_refuses_it_without_actions_or_history():
    torch.manual_seed(0)
    m = build_model("debug", action_dim=2, history=1, action_warp=True)
    assert m.embed.in_features == 3 * 16 * 2 + 3 * 16
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    x, s, a = torch.randn(1, 3, 3, 8, 8), torch.rand(1, 3), torch.randn(1, 3, 2)
    y = m(x, s, Cond(actions=a))
    m.warp.shift.weight.data.zero_()  # the actions still reach the conditioning vector: only the warp is off
    assert not torch.allclose(y, m(x, s, Cond(actions=a)))
    for bad in ({"action_dim": 0, "history": 1}, {"action_dim": 2, "history": 0}):
        with pytest.raises(ConfigError) as e:
            build_model("debug", action_warp=True, **bad)
        assert e.value.field == "action_warp"


def test_fine_tuning_adds_the_warp_to_weights_without_it(tmp_path):
    torch.manual_seed(0)
    plain = build_model("debug", action_dim=2, history=1)
    with torch.no_grad():
        for p in plain.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    path = save_model(tmp_path / "plain.safetensors", plain, {"name": "push"}, {})
    warped = build_model("debug", action_dim=2, history=1, action_warp=True)
    warped.load_state_dict(initial_weights(str(path), warped.state_dict()))
    x, s, cond = torch.randn(1, 3, 3, 8, 8), torch.rand(1, 3), Cond(actions=torch.randn(1, 3, 2))
    torch.testing.assert_close(warped.eval()(x, s, cond), plain.eval()(x, s, cond))  # the same function at start
    other = build_model("debug", action_dim=2, history=2, action_warp=True)            # a different history: refused
    with pytest.raises(ConfigError) as e:
        initial_weights(str(path), other.state_dict())
    assert e.value.field == "model.init_weights" and "embed.weight" in e.value.message


def _blobs(B: int, T: int, px_per_action: float, size: int = 16, seed: int = 0):
    """A soft blob moved each frame by `px_per_action` times that frame's action (x right, y down): clips in [-1, 1]
    (B, T, 3, size, size) and the actions (B, T, 2) that led into each frame (0 into the first)."""
    g = torch.Generator().manual_seed(seed)
    acts = torch.rand(B, T, 2, generator=g) * 2 - 1
    acts[:, 0] = 0
    pos = (torch.rand(B, 2, generator=g) * 2 + 7)[:, None] + px_per_action * acts.cumsum(1)          # (B, T, 2)
    grid = torch.arange(size) + 0.5
    d2 = (grid[None, None, None, :] - pos[..., 0, None, None]) ** 2 + \
        (grid[None, None, :, None] - pos[..., 1, None, None]) ** 2                                   # (B, T, S, S)
    img = torch.exp(-d2 / (2 * 1.5 ** 2)) * 2 - 1
    return img[:, :, None].expand(B, T, 3, size, size).contiguous(), acts


def test_a_toy_world_model_learns_the_displacement_its_actions_command():
    torch.manual_seed(0)
    m = build_model("debug", action_dim=2, history=1, action_warp=True, cond_dropout=0.0, text=None)
    den = D.EDMDenoiser(m, D.EDMConfig(p_mean=0.0))
    clips, acts = _blobs(8, 3, px_per_action=2.0)
    cfg = D.LossConfig(edm=den.cfg, p_context=1.0, patterns=("first_k",))
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(120):
        loss = D.loss(den, clips, Cond(actions=acts), cfg=cfg, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    px = m.warp.pixels(torch.eye(2)).detach()   # row i: the displacement of a unit action on axis i
    assert px[0, 0] > 0.5 and px[1, 1] > 0.5, px  # each axis moves the frame its own way, toward the true 2 px
    assert px[0, 1].abs() < px[0, 0] / 2 and px[1, 0].abs() < px[1, 1] / 2, px


def test_training_can_start_the_warp_from_a_measured_map():
    from worldsim.training.module import WorldModel

    scene = {"name": "push", "action_dim": 2, "cameras": ["top"], "param_names": []}
    over = {"history": 1, "action_warp": True}
    m = WorldModel(preset="debug", scene=scene, overrides=over, warp_init=[[0.95, 0.0], [0.0, -0.94]])
    torch.testing.assert_close(m.net.warp.pixels(torch.eye(2)), torch.tensor([[0.95, 0.0], [0.0, -0.94]]))
    torch.testing.assert_close(m.net.warp.pixels(torch.eye(2), height=16)[1, 1], torch.tensor(-0.47))  # half the px
    for bad, over_ in (([[1.0, 0.0]], over), ([[1.0], [0.0, 1.0]], over), ([[1.0, 0.0], [0.0, 1.0]], {"history": 1})):
        with pytest.raises(ConfigError) as e:
            WorldModel(preset="debug", scene=scene, overrides=over_, warp_init=bad)
        assert e.value.field == "model.warp_init"

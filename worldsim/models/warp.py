"""The action's spatial path (`DiTConfig.action_warp`): each frame is shown its previous frame translated by a learned
linear map of the action that led into it, the displacement the action commands, in pixels.

Why: in `push` one frame's action moves the pusher under a pixel, a handful of boundary pixels of a 32-px frame, and
through the per-frame conditioning vector alone the network never learned to use it (E12, E47–E49). A translated copy
of the previous frame turns "where the action sends the agent" into pixels a token can copy from, and the translation
itself is two numbers per action dimension, learned by gradient through bilinear sampling (a spatial transformer,
Jaderberg et al. 2015). Where the action moves the camera (`orbit`) the whole frame shifts the same way; where it
moves nothing on screen the map can stay at zero.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.nn import functional as F


def translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x (B, T, C, H, W) moved by shift (B, T, 2) = (dx, dy) px (x right, y down), bilinear, edges repeated:
    out[..., i, j] = x[..., i - dy, j - dx]. Differentiable in both x and shift."""
    B, T, C, H, W = x.shape
    d = rearrange(shift.to(x.dtype), "b t two -> (b t) two")                                   # (B T, 2) px
    theta = torch.zeros(B * T, 2, 3, device=x.device, dtype=x.dtype)                           # sample at p - d
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2], theta[:, 1, 2] = -2 * d[:, 0] / W, -2 * d[:, 1] / H                       # px -> [-1, 1] units
    frames = rearrange(x, "b t c h w -> (b t) c h w")
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)                      # (B T, H, W, 2)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return rearrange(out, "(b t) c h w -> b t c h w", b=B)


# Displacements are stated in pixels of a frame REFERENCE_HEIGHT px high and scale with the frame's height, so one map
# serves every resolution a model trains on (a 16-px preview moves half as many pixels as the 32-px frame).
REFERENCE_HEIGHT = 32
# The shift's weights are in units of this many (reference) pixels: Adam moves a weight by about its learning rate a
# step, so in pixel units a 1-px displacement would take ~1,000 steps at lr 1e-3; in 4-px units ~250.
SHIFT_UNIT_PX = 4.0


class ActionWarp(nn.Module):
    """(previous frames (B, T, C, H, W), actions (B, T, A) or None) -> the previous frames moved by the commanded
    displacement `pixels(actions)`.

    Zero at init (the warped frame is the previous frame), and without actions (absent, or nulled for guidance)
    nothing moves: the network's no-action view. Condition dropout does not reach it: in training the warp always
    sees the clip's actions."""

    def __init__(self, action_dim: int):
        super().__init__()
        self.shift = nn.Linear(action_dim, 2, bias=False)
        nn.init.zeros_(self.shift.weight)

    def pixels(self, actions: torch.Tensor, height: int = REFERENCE_HEIGHT) -> torch.Tensor:
        """actions (..., A) -> the displacement (..., 2) = (dx, dy) px they command in a frame `height` px high."""
        scale = SHIFT_UNIT_PX * height / REFERENCE_HEIGHT
        return self.shift(actions.to(self.shift.weight.device, torch.float32)) * scale

    def set_pixels(self, per_action: torch.Tensor) -> None:
        """Start from a known map: per_action (2, A), column a the (dx, dy) px (at the reference height) that a unit
        of action a commands (e.g. measured from the data: `worldsim inspect STORE`)."""
        with torch.no_grad():
            self.shift.weight.copy_(per_action.to(self.shift.weight) / SHIFT_UNIT_PX)

    def forward(self, prev: torch.Tensor, actions: torch.Tensor | None) -> torch.Tensor:
        if actions is None:
            return prev
        return translate(prev, self.pixels(actions, prev.shape[-2]))                          # (B, T, C, H, W)

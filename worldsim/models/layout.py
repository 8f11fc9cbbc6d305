"""Caption facts placed on the first frame's tokens: each token learns whether the caption puts an object there.

A vector that modulates every token alike (the text group's embedding) must be crossed with each token's position by
the network before it can place a ball; E77 measured how little of that a round learns. `TextConfig.layout` instead
adds to each token of a clip's first frame an MLP of (one object slot's facts, the token's place in the frame),
summed over the slots that hold an object: the camera's projection is learnt by one small MLP, and the frames after
the first follow from it by the network's own dynamics. Zero at init (fine-tuning starts from the file's function).
"""

from __future__ import annotations

import torch
from torch import nn

from worldsim.models.caption_facts import SLOT_DIM, number_features

PLACE_DIM = 2 * (1 + 16)  # number_features of the token's two coordinates


def token_places(h: int, w: int, device=None) -> torch.Tensor:
    """(h * w, 2) token centres (row, column) in frame heights from the frame's centre: the same place of the scene
    has the same coordinates at any resolution with the same field of view, and a wider frame only reaches further."""
    rows = (torch.arange(h, device=device, dtype=torch.float32) + 0.5 - h / 2) / h       # (h,)
    cols = (torch.arange(w, device=device, dtype=torch.float32) + 0.5 - w / 2) / h       # (w,)
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(h * w, 2)


class FactsLayout(nn.Module):
    """(B, K, SLOT_DIM) object slots, a (h, w) token grid -> (B, h * w, width), zero at init."""

    def __init__(self, width: int, hidden: int = 128):
        super().__init__()
        self.slot = nn.Linear(SLOT_DIM, hidden)
        self.place = nn.Linear(PLACE_DIM, hidden, bias=False)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, width))

    def forward(self, slots: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        place = number_features(token_places(*grid, slots.device))                      # (S, PLACE_DIM)
        hid = self.slot(slots)[:, :, None] + self.place(place)                          # (B, K, S, hidden)
        present = slots[..., :1, None]                                                  # (B, K, 1, 1)
        return (self.out(hid) * present).sum(1)                                         # (B, S, width)

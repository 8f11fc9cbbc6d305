"""Captions -> one vector each: a byte tokenizer (no vocabulary to fit or ship, any caption encodes) and a small
transformer encoder trained from scratch with the world model. No downloaded weights."""

from __future__ import annotations

import torch
from torch import nn

from worldsim.models.config import TextConfig

PAD, BOS, EOS = 0, 1, 2
VOCAB = 256 + 3  # bytes shifted past the three specials


def tokenize(captions: list[str], max_len: int) -> torch.Tensor:
    """UTF-8 bytes of each caption between BOS and EOS, cut to `max_len` and padded with PAD -> (B, max_len) long."""
    out = torch.full((len(captions), max_len), PAD, dtype=torch.long)
    for i, caption in enumerate(captions):
        ids = [BOS] + [b + 3 for b in caption.encode("utf-8")][: max_len - 2] + [EOS]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def detokenize(ids: torch.Tensor) -> list[str]:
    """The inverse of `tokenize` (for cut captions, the kept prefix)."""
    return [bytes(int(i) - 3 for i in row if int(i) > EOS).decode("utf-8", errors="replace") for row in ids]


class TextEncoder(nn.Module):
    """(B, L) byte ids -> (B, width) by a pre-norm transformer encoder and a masked mean over the tokens."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(VOCAB, cfg.width, padding_idx=PAD)
        self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.width) * 0.02)
        layer = nn.TransformerEncoderLayer(cfg.width, cfg.heads, 4 * cfg.width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids[:, : self.cfg.max_len]
        keep = ids != PAD                                                         # (B, L)
        h = self.embed(ids) + self.pos[: ids.shape[1]]                             # (B, L, E)
        h = self.norm(self.encoder(h, src_key_padding_mask=~keep))                 # (B, L, E)
        w = keep.to(h.dtype)[..., None]
        return (h * w).sum(1) / w.sum(1).clamp(min=1.0)                            # (B, E)

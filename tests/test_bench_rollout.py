"""`worldsim bench rollout`'s preview rows: the parts it times are real generations (speed itself is the bench's
figure, never asserted here)."""

from __future__ import annotations

import math

from worldsim.bench.rollout import preview_seconds


def test_preview_parts_are_timed_generations():
    secs = preview_seconds(batch=1, frames=3, steps=2)
    assert set(secs) == {"draft", "render", "t2v"}
    assert all(math.isfinite(v) and v > 0 for v in secs.values()), secs

"""Multi-shot episodes: a schedule of cuts between a scene's cameras (Sora's multi-shot videos).

Requested with `env.reset(options={"shots": ...})`:
- `[[frame, camera], ...]`: cut to `camera` at `frame` (frames strictly increasing, from 0; before the first
  entry the env's camera is used);
- `"random"`: a schedule drawn from the episode's seed: the env's camera first, then a cut every
  `RANDOM_SHOT_FRAMES` frames (drawn uniformly) to one of the other cameras.

Every frame's `info["camera"]`, `info["intrinsics"]` and `info["extrinsics"]` describe the camera of that frame,
and each cut is a `shot` event.
"""

from __future__ import annotations

import numpy as np

from worldsim.errors import SceneError

RANDOM_SHOT_FRAMES = (8, 24)  # a random shot lasts this many frames (inclusive range)


def schedule(shots, cameras: tuple[str, ...], default: str, max_frames: int,
             rng: np.random.Generator) -> list[tuple[int, str]]:
    """Validate or draw a shot schedule: a list of (first frame, camera), starting at frame 0."""
    if shots is None:
        return [(0, default)]
    if isinstance(shots, str):
        if shots != "random":
            raise SceneError(f"expected a list of [frame, camera] or 'random', got {shots!r}", field="options.shots")
        out, frame, cam = [(0, default)], 0, default
        while True:
            frame += int(rng.integers(RANDOM_SHOT_FRAMES[0], RANDOM_SHOT_FRAMES[1] + 1))
            if frame >= max_frames:
                return out
            cam = str(rng.choice([c for c in cameras if c != cam]))
            out.append((frame, cam))
    if not isinstance(shots, (list, tuple)) or not shots:
        raise SceneError(f"expected a non-empty list of [frame, camera], got {shots!r}", field="options.shots")
    out = [] if _entry(shots[0], 0, cameras)[0] == 0 else [(0, default)]
    for i, s in enumerate(shots):
        frame, cam = _entry(s, i, cameras)
        if out and frame <= out[-1][0]:
            raise SceneError(f"shot frames must increase strictly, got {frame} after {out[-1][0]}",
                             field=f"options.shots[{i}]")
        out.append((frame, cam))
    return out


def _entry(s, i: int, cameras: tuple[str, ...]) -> tuple[int, str]:
    if not (isinstance(s, (list, tuple)) and len(s) == 2 and isinstance(s[0], (int, np.integer)) and s[0] >= 0):
        raise SceneError(f"expected [frame, camera] with frame >= 0, got {s!r}", field=f"options.shots[{i}]")
    if s[1] not in cameras:
        raise SceneError(f"unknown camera {s[1]!r}; cameras: {list(cameras)}", field=f"options.shots[{i}]")
    return int(s[0]), str(s[1])


def camera_at(plan: list[tuple[int, str]], frame: int) -> str:
    """The camera of `frame` under a schedule."""
    cam = plan[0][1]
    for start, c in plan:
        if start > frame:
            break
        cam = c
    return cam

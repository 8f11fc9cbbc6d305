"""The episode store's schema: every array and attribute a worldsim store holds, with dtype, shape and meaning.

This table is the contract that `docs/data.md` writes up and that `store.open_store` checks on open. A reader
needs only `zarr` to use a store: nothing here is worldsim-specific except the names.

Shapes use: N = slots x slot_frames rows along time, E = episode slots, H x W the resolution, A the action size,
nq / nv / nu MuJoCo's sizes, K the scene's objects (object arrays are absent when K = 0, e.g. gymnasium envs).
"""

from __future__ import annotations

from dataclasses import dataclass

# Bump when an array or attribute changes meaning, dtype or shape; readers refuse other versions.
SCHEMA_VERSION = 1
SCHEMA_NAME = "worldsim.episodes"

# Built-in split names. Any identifier is accepted as a split name; these have a default distribution.
DEFAULT_DISTRIBUTION = {"train": "id", "val": "id", "test": "id", "ood": "ood", "heldout": "heldout"}


@dataclass(frozen=True)
class ArraySpec:
    """One array of a split group. `per` is `frame` (first axis N, chunked along time) or `episode` (first axis E,
    one chunk per episode so that writers of different episodes never touch the same file)."""

    name: str
    per: str
    dtype: str
    tail: str  # the shape after the first axis, as documented (symbols resolved by `tail_shape`)
    meaning: str
    when: str = "always"  # `always`, `objects` (K > 0), `rewards` (the env has rewards)


ARRAYS: tuple[ArraySpec, ...] = (
    ArraySpec("frames", "frame", "uint8", "(H, W, 3)", "RGB frame from this row's camera"),
    ArraySpec("actions", "frame", "float32", "(A,)",
              "action applied after this frame (leading to the next); 0 on an episode's last frame"),
    ArraySpec("rewards", "frame", "float32", "()",
              "reward received on arriving at this frame; 0 on an episode's first frame", "rewards"),
    ArraySpec("terminations", "frame", "bool", "()",
              "the env reported `terminated` on arriving at this frame", "rewards"),
    ArraySpec("qpos", "frame", "float64", "(nq,)", "MuJoCo qpos at this frame"),
    ArraySpec("qvel", "frame", "float64", "(nv,)", "MuJoCo qvel at this frame"),
    ArraySpec("ctrl", "frame", "float64", "(nu,)", "MuJoCo ctrl at this frame (the last action applied)"),
    ArraySpec("time", "frame", "float64", "()", "simulated time, s"),
    ArraySpec("object_pos", "frame", "float64", "(K, 3)",
              "world position of each object, m; 0 when inactive", "objects"),
    ArraySpec("object_vel", "frame", "float64", "(K, 3)",
              "world linear velocity of each object, m/s; 0 when inactive", "objects"),
    ArraySpec("object_centroid", "frame", "float32", "(K, 2)",
              "mean (u, v) of the object's visible pixels, px; 0 where not visible", "objects"),
    ArraySpec("object_visible", "frame", "float32", "(K,)",
              "visible pixels / pixels it would cover unoccluded, in [0, 1]", "objects"),
    ArraySpec("object_active", "frame", "bool", "(K,)", "whether the object takes part in the episode", "objects"),
    ArraySpec("camera", "frame", "int16", "()", "index into the root attribute `cameras` of this frame's camera"),
    ArraySpec("intrinsics", "frame", "float64", "(3, 3)", "camera matrix K, px (OpenCV convention)"),
    ArraySpec("extrinsics", "frame", "float64", "(4, 4)",
              "world-to-camera transform (OpenCV axes: x right, y down, z forward)"),
    ArraySpec("episode_start", "episode", "int64", "()",
              "first row of the episode in the per-frame arrays (= slot x slot_frames)"),
    ArraySpec("episode_length", "episode", "int32", "()",
              "number of valid frames (frames_per_episode unless the env terminated)"),
    ArraySpec("episode_index", "episode", "int64", "()", "the episode's index within its split (= its slot)"),
    ArraySpec("env_seed", "episode", "uint64", "()", "seed passed to `env.reset`, derived from (seed, split, index)"),
    ArraySpec("params", "episode", "str", "()", "JSON object: the scene quantities that generated the episode"),
    ArraySpec("caption", "episode", "str", "()",
              "the env's caption of the whole episode (its last `info['caption']`), '' when the env gives none"),
    ArraySpec("caption_events", "episode", "str", "()",
              "JSON list of the episode's events, the facts captions are made of (every frame's `info['events']`), '[]' when none"),
    ArraySpec("committed", "episode", "uint8", "()",
              "1 once every other array of the episode is written: written last"),
)
ARRAY_SPECS = {a.name: a for a in ARRAYS}

# Root attributes (all required). Values are JSON.
ROOT_ATTRS: dict[str, str] = {
    "schema": f"always {SCHEMA_NAME!r}",
    "schema_version": f"integer, {SCHEMA_VERSION} for this layout",
    "worldsim_version": "version of worldsim that created the store",
    "scene": "worldsim scene name or gymnasium env id",
    "source": "`scene` (a worldsim scene) or `gymnasium` (any gymnasium MuJoCo env)",
    "resolution": "[height, width] of the frames, px",
    "fps": "frames per simulated second",
    "frame_skip": "physics steps per frame",
    "timestep": "physics timestep, s",
    "frames_per_episode": "frames recorded per episode (the reset frame included)",
    "chunk_frames": "rows per time chunk of `frames` (the other per-frame arrays have one chunk per episode slot)",
    "slot_frames": "rows reserved per episode slot (frames_per_episode rounded up to whole time chunks)",
    "cameras": "camera names; the per-frame `camera` array indexes this list",
    "objects": "object names, in the order of the K axis ([] when the env has none)",
    "nq": "size of qpos", "nv": "size of qvel", "nu": "size of ctrl",
    "rewards": "whether the env has rewards (then `rewards` and `terminations` arrays exist)",
    "action_low": "lower bounds of the action space",
    "action_high": "upper bounds of the action space",
    "seed": "the recording seed; episode content depends only on (seed, split, episode index)",
    "holdout": "null, or {quantity, rule}: the held-out combinations kept out of train/val/test",
    "created": "ISO 8601 UTC time the store was created (the only attribute that differs between equal recordings)",
}

# Per-split group attributes.
SPLIT_ATTRS: dict[str, str] = {
    "split": "the split's name (train, val, test, ood, heldout or any identifier)",
    "split_id": "the integer mixed into every episode's seed: crc32 of the name, so splits draw disjoint seed streams",
    "distribution": "`id`, `ood`, `ood:NAME` or `heldout`: what the scene quantities were drawn from",
    "ranges": "explicit {quantity: [low, high]} overriding the distribution, {} when none",
    "policy": "{name, options}: the action policy",
    "reset_options": "extra options passed to `env.reset` (e.g. a camera schedule), {} when none",
    "arrays": "names of the arrays in this split group",
}


def present(spec: ArraySpec, n_objects: int, rewards: bool) -> bool:
    """Whether an array belongs in a store of an env with `n_objects` objects and (or without) rewards."""
    return spec.when == "always" or (spec.when == "objects" and n_objects > 0) or (spec.when == "rewards" and rewards)


def tail_shape(spec: ArraySpec, dims: dict[str, int]) -> tuple[int, ...]:
    """The concrete shape after the first axis, e.g. `(K, 3)` with dims {"K": 2} -> (2, 3)."""
    inner = spec.tail.strip("()").replace(" ", "")
    return tuple(dims[s] if s in dims else int(s) for s in inner.split(",") if s)

"""Training data: windows of T frames cut from the episodes of one or more zarr stores, batched by bucket.

Mechanism for several resolutions, aspect ratios and durations in one run: **buckets**. A bucket is one
(store, window length) pair; every batch is drawn from a single bucket, so its clips share (T, H, W) and stack
without padding. Several resolutions come from several stores (each store has one resolution), several durations
from several window lengths. The bucket of a step is drawn in proportion to its number of windows.

Data order is a pure function of (seed, step): batch s is drawn from `np.random.default_rng([seed, s])`. A resumed
run therefore sees exactly the batches an uninterrupted one would, with no sampler state to save.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from worldsim.data.store import EpisodeStore, open_store
from worldsim.errors import ConfigError, StoreError
from worldsim.sim.captions import caption
from worldsim.sim.conditioned import param_names, param_vector
from worldsim.sim.registry import get_scene, scene_names

@dataclass(frozen=True)
class Bucket:
    store: int
    window: int
    episodes: np.ndarray  # (n,) index into the store's loaded episodes
    starts: np.ndarray  # (n,) first frame of each window within its episode
    batch_size: int  # clips per batch drawn from this bucket
    # indices (into `starts`) of the windows that hold each kind of event in `FOCUS`: filled only for the kinds
    # asked for (a share > 0)
    focus: dict[str, np.ndarray] = field(default_factory=dict)


# Events a share of training clips can be drawn around (`data.occlusion_share`, `data.push_share`, `data.start_share`),
# in the order the sampler draws them, with what a window must hold (`holds_occlusion`, `holds_push`, `holds_start`).
FOCUS = {"occlusion": "a whole occlusion (an object seen, hidden and seen again)",
         "push": "the start of a push (an agent meeting an object) with a frame before it and two after",
         "start": "an episode's first frame"}


def bucket_batch_size(batch_size: int, pixels_per_batch: int | None, window: int, resolution: tuple[int, int]) -> int:
    """Clips per batch of a (window, resolution) bucket: `batch_size`, or with a pixel budget as many clips as fit
    in it (at least one), so a step costs about the same at every size (Open-Sora's per-bucket batch sizes)."""
    if pixels_per_batch is None:
        return batch_size
    return max(1, pixels_per_batch // (window * resolution[0] * resolution[1]))


class EpisodeArrays:
    """One split of one store, decoded into memory once (the default store sizes fit a 24 GiB machine easily)."""

    def __init__(self, store: EpisodeStore, split: str, events: bool = False, window_captions: bool = False):
        self.store, self.split = store, split
        attrs = store.attrs
        self.path = store.path
        self.scene = attrs["scene"]
        self.resolution = tuple(attrs["resolution"])
        self.fps = float(attrs["fps"])
        self.frame_skip = int(attrs["frame_skip"])
        self.cameras = list(attrs["cameras"])
        self.action_dim = int(len(attrs["action_low"]))
        idx = store.committed(split)
        if len(idx) == 0:
            raise StoreError(f"split {split!r} has no complete episodes", source=store.path, field=split)
        arrays = ["frames", "actions", "camera"]
        extra = ["caption_events"] if events or window_captions else []
        extra += ["object_pos", "object_vel"] if window_captions else []
        eps = [store.episode(split, int(i), arrays + ["params", "caption", *extra]) for i in idx]
        self.frames = [e["frames"] for e in eps]  # (T_e, H, W, 3) uint8 each
        self.actions = [e["actions"].astype(np.float32) for e in eps]  # (T_e, A): action applied after frame t
        self.camera = [e["camera"].astype(np.int64) for e in eps]
        self.captions = [e.get("caption", "") for e in eps]
        spec = get_scene(self.scene).spec if self.scene in scene_names() else None
        self.params = [param_vector(spec, e["params"]) if spec else np.zeros(0, np.float32) for e in eps]
        self.lengths = np.array([len(f) for f in self.frames])
        # what `window_caption` needs: kept only when asked for (the episode's params, events and object states)
        self.spec = spec if window_captions else None
        if window_captions:
            if spec is None:
                raise ConfigError(f"window captions need a worldsim scene's caption grammar; {self.scene!r} has none",
                                  source=store.path, field="data.window_captions")
            self.raw = [(e["params"], e.get("caption_events") or [], e["object_pos"], e["object_vel"]) for e in eps]
        # what `holds_occlusion` / `holds_push` need of each episode's events: read only when a share asks for them
        found = [e.get("caption_events") or [] for e in eps] if events else []
        self.focus = {"occlusion": [occlusion_spans(ev) for ev in found], "push": [push_frames(ev) for ev in found],
                      "start": [()] * len(eps)}  # an episode's start needs nothing of its events

    def window_caption(self, e: int, start: int, frames: int) -> str:
        """The caption of episode e's frames [start, start + frames) as a clip of its own: the objects where they are
        and how they move at `start`, its events renumbered from 0 (what `expand` writes for a prompt's clip)."""
        params, events, pos, vel = self.raw[e]
        shifted = [{**ev, "frame": int(ev["frame"]) - start} for ev in events]
        return caption(self.spec, params, shifted, 0, frames, object_pos=pos[start:], object_vel=vel[start:])


def occlusion_spans(events: list[dict]) -> list[tuple[int, int]]:
    """(last frame seen, frame seen again) of each object hidden and seen again in an episode, from its recorded
    `occluded` / `emerged` events (the thresholds the re-emergence metric uses, worldsim/sim/events.py)."""
    hidden: dict[str, int] = {}
    spans = []
    for e in sorted(events, key=lambda e: e["frame"]):
        if e.get("type") == "occluded":
            hidden[e["object"]] = int(e["frame"])
        elif e.get("type") == "emerged" and e["object"] in hidden:
            spans.append((hidden.pop(e["object"]) - 1, int(e["frame"])))
        elif e.get("type") == "cut":  # a new shot: what was hidden in the last one is not a reappearance here
            hidden.clear()
    return [(a, b) for a, b in spans if a >= 0]


def holds_occlusion(starts: np.ndarray, window: int, spans: list[tuple[int, int]]) -> np.ndarray:
    """Which windows [s, s + window) hold a whole occlusion: the object's last frame seen before it hides and the
    frame it is seen again, so the loss scores a reappearance whose cause is in the clip."""
    held = np.zeros(len(starts), bool)
    for seen, again in spans:
        held |= (starts <= seen) & (again <= starts + window - 1)
    return held


def push_frames(events: list[dict]) -> list[int]:
    """Frames on which an agent began to push an object (the recorded `push` events, worldsim/sim/events.py)."""
    return sorted(int(e["frame"]) for e in events if e.get("type") == "push")


def holds_push(starts: np.ndarray, window: int, frames: list[int]) -> np.ndarray:
    """Which windows [s, s + window) hold the start of a push with a frame before it and two after: the clip shows
    the agent arriving, the contact and the pushed object moving, so the loss scores a motion whose cause is in it."""
    held = np.zeros(len(starts), bool)
    for f in frames:
        held |= (starts < f) & (f + 2 <= starts + window - 1)
    return held


def holds_start(starts: np.ndarray, window: int, _: tuple = ()) -> np.ndarray:
    """Which windows begin on their episode's first frame: the objects where the scene places them, as `expand`
    simulates a prompt's clip (text-to-video starts there; windows around events rarely show that layout)."""
    return starts == 0


HOLDS = {"occlusion": holds_occlusion, "push": holds_push, "start": holds_start}


def _check_compatible(parts: list[EpisodeArrays]) -> None:
    first = parts[0]
    for p in parts[1:]:
        for key in ("scene", "frame_skip", "action_dim", "cameras"):
            if getattr(p, key) != getattr(first, key):
                raise StoreError(f"{key} {getattr(p, key)!r} differs from {getattr(first, key)!r} in {first.path}",
                                 source=p.path, field=key)


MIRROR_LEVELS = 24  # colour levels a pixel may differ from its mirror and still count as the same background
MIRROR_SHARE = 0.02  # share of the median frame's pixels that may differ so (anti-aliased edges, a parked object)


def _check_mirror_symmetric(part: EpisodeArrays) -> None:
    """Refuse `data.p_mirror` on a store whose background is not the same flipped left to right: its median frame
    (objects move, so the median over many frames is the background) against its mirror image."""
    frames = np.concatenate(part.frames[:: max(1, len(part.frames) // 64)])                   # (N, H, W, 3)
    median = np.median(frames[:: max(1, len(frames) // 2048)], axis=0).astype(np.int16)       # (H, W, 3)
    differ = (np.abs(median - median[:, ::-1]) > MIRROR_LEVELS).any(-1).mean()
    if differ > MIRROR_SHARE:
        raise ConfigError(f"{differ:.0%} of the background's pixels differ from their mirror image: mirrored clips "
                          f"would show a world that does not exist", source=part.path, field="data.p_mirror")


class WindowDataset(Dataset):
    """Item (bucket, window) -> one training clip as a dict of tensors (see `__getitem__`).

    Which frames are given clean (the conditioning patterns) is drawn by the loss, from the step's seed."""

    def __init__(self, parts: list[EpisodeArrays], buckets: list[Bucket]):
        self.parts, self.buckets = parts, buckets

    def __len__(self) -> int:
        return sum(len(b.starts) for b in self.buckets)

    def __getitem__(self, item: tuple[int, int] | tuple[int, int, bool] | tuple[int, int, bool, bool]) -> dict:
        """video (T, C, H, W) in [-1, 1]; actions (T, A): the action that led into each frame; camera_ids (T,);
        params (P,) the conditioned scene quantities; caption str; reversed () bool. A reversed clip (the item's
        third element) has its frames and cameras backward and no caption (None: the text's null embedding), since
        the episode's caption tells its events forward; a mirrored one (the fourth) has its frames flipped left to
        right and no caption either, since the caption names where things are."""
        b, w, reverse, mirror = (*item, False, False)[:4]
        bucket = self.buckets[b]
        part = self.parts[bucket.store]
        e, s, T = int(bucket.episodes[w]), int(bucket.starts[w]), bucket.window
        frames = torch.from_numpy(part.frames[e][s : s + T])  # (T, H, W, 3) uint8
        video = frames.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)  # (T, C, H, W) in [-1, 1]
        # The action that led INTO frame t is the one applied after frame t-1; an episode's first frame has none
        # (a zero action, as "do nothing" in every actuated scene).
        acts = np.zeros((T, part.action_dim), np.float32)
        prev = part.actions[e][max(s - 1, 0) : s + T - 1]
        acts[T - len(prev) :] = prev
        cams = torch.from_numpy(part.camera[e][s : s + T])
        if reverse:
            video, cams = video.flip(0), cams.flip(0)
        if mirror:
            video = video.flip(-1)
        return {
            "video": video,
            "actions": torch.from_numpy(acts),
            "camera_ids": cams,
            "params": torch.from_numpy(part.params[e]),
            "caption": None if reverse or mirror else part.window_caption(e, s, T) if part.spec else part.captions[e],
            "reversed": torch.tensor(bool(reverse)),
        }


class StepBatchSampler(Sampler[list[tuple[int, int]]]):
    """Yields batches `start()` .. `steps - 1`; batch s is a function of (seed, s) alone.

    Under data parallelism the global batch (batch_size x world) is drawn the same way on every rank and each rank
    takes its slice, so a run on N processes sees the same global batches as one process with N x batch_size."""

    def __init__(self, buckets: list[Bucket], seed: int, steps: int, start=lambda: 0, rank: int = 0, world: int = 1,
                 shares: dict[str, float] | None = None, p_reverse: float = 0.0, p_mirror: float = 0.0):
        self.buckets, self.seed, self.steps, self.start = buckets, seed, steps, start
        self.shares = shares or {}  # kind in FOCUS -> share of clips drawn around it
        self.p_reverse, self.p_mirror = p_reverse, p_mirror
        self.rank, self.world = rank, world
        sizes = np.array([len(b.starts) for b in buckets], dtype=np.float64)
        self.weights = sizes / sizes.sum()

    def __len__(self) -> int:
        return self.steps

    def batch(self, step: int) -> list[tuple[int, int] | tuple[int, int, bool] | tuple[int, int, bool, bool]]:
        rng = np.random.default_rng([self.seed, step])
        b = int(rng.choice(len(self.buckets), p=self.weights))
        bucket = self.buckets[b]
        windows = rng.integers(0, len(bucket.starts), bucket.batch_size * self.world)
        asked = [(self.shares[k], bucket.focus[k]) for k in FOCUS
                 if self.shares.get(k, 0) > 0 and len(bucket.focus.get(k, ()))]
        if asked:  # drawn only when asked: other runs keep their order
            # one uniform number per clip, cut into consecutive intervals of the shares: each share is exact
            u, low = rng.random(len(windows)), 0.0
            for share, held in asked:
                chosen = (low <= u) & (u < low + share)
                windows[chosen] = held[rng.integers(0, len(held), int(chosen.sum()))]
                low += share
        mine = slice(self.rank, None, self.world)
        # flags drawn after the windows and only when asked, as above: runs without them keep their order
        flip = rng.random(len(windows)) < self.p_reverse if self.p_reverse > 0 else np.zeros(len(windows), bool)
        if self.p_mirror > 0:
            mirror = rng.random(len(windows)) < self.p_mirror
            return [(b, int(w), bool(f), bool(m)) for w, f, m in zip(windows[mine], flip[mine], mirror[mine])]
        if self.p_reverse > 0:
            return [(b, int(w), bool(f)) for w, f in zip(windows[mine], flip[mine])]
        return [(b, int(w)) for w in windows[mine]]

    def __iter__(self):
        first = int(self.start())
        for step in range(first, self.steps):
            yield self.batch(step)


class StepDataLoader(DataLoader):
    """A DataLoader whose position is the trainer's global step (see `StepBatchSampler`): it is resumable with no
    state of its own, which Lightning learns from these two methods."""

    def state_dict(self) -> dict:
        return {"position": "trainer.global_step"}

    def load_state_dict(self, state: dict) -> None:
        pass


def collate(items: list[dict]) -> dict:
    out = {k: torch.stack([it[k] for it in items]) for k in items[0] if k != "caption"}
    out["caption"] = [it["caption"] for it in items]
    return out


class WorldDataModule(L.LightningDataModule):
    """Windows of `windows` frames from the `stores`' train and val splits, batched by bucket (see module doc).

    Args:
        stores: paths of zarr stores of the same scene (several resolutions/aspect ratios allowed).
        windows: window lengths in frames (several durations allowed).
        batch_size: clips per batch.
        pixels_per_batch: if set, each bucket's batch holds as many clips as fit in this many pixels
            (frames x height x width; at least one clip) instead of `batch_size`, so steps at every resolution and
            duration cost about the same (e.g. 65536: 8 clips of 8 frames at 32x32, 32 clips at 16x16).
        stride: frames between window starts within an episode.
        seed: data-order seed; batch s depends on (seed, s) only.
        max_steps: batches per training "epoch" (training is step-based; set it to the trainer's max_steps).
        val_batches: fixed validation batches (drawn once with seed + 1 from the val split).
        num_workers: DataLoader worker processes (0 on a 2-core machine: loading is from memory).
        train_split, val_split: split names in the stores.
        occlusion_share: the share of training clips drawn from windows that hold a whole occlusion (an object
            seen, hidden and seen again, from the stores' recorded events), in buckets that have such windows;
            0 draws every window alike. Validation windows are always drawn alike, so curves compare between runs.
        p_reverse: the share of training clips played backward (frames and cameras reversed, caption withheld),
            so that a frame-causal model can also extend a clip into its past by rolling out in reversed time
            (`generate(..., "extend_backward")` does so for such weights). Only for scenes without actions whose
            physics runs the same both ways (elastic and frictionless: `bounce`, `collide`, `occlusion`,
            `parabola`); a store with actions is refused. Validation clips are never reversed.
        p_mirror: the share of training clips flipped left to right (caption withheld), with no flag telling the
            model so: where every ball starts on the left (`parabola`), where a ball is otherwise tells which way
            it goes and the context frames are not read for it (docs/experiments.md E139-E141). Pair it with
            `loss.p_uncaptioned: 1.0`, or the null caption marks the mirrored clips (E139). Only for scenes without
            actions whose background looks the same mirrored (checked on the stores' median frame). Validation
            clips are never mirrored.
        push_share: the share of training clips drawn from windows that hold the start of a push (an agent meeting
            an object: the recorded `push` events) with a frame before it and two after, as `occlusion_share` does
            for occlusions. Validation windows are always drawn alike.
        start_share: the share of training clips drawn from windows that begin on their episode's first frame, where
            the scene places its objects and where `expand` starts a prompt's clip: with windows drawn around events
            (`occlusion_share`) text-only clips otherwise rarely show that layout (the three shares together at
            most 1). Validation windows are always drawn alike.
        window_captions: caption each clip as a clip of its own (the objects at its first frame, its events
            renumbered from 0: `captions.caption` of the window) instead of with its episode's caption, which
            describes frame 0 of the episode, not of the window, and so leaves a text-only clip's layout unknown.
    """

    def __init__(self, stores: list[str], windows: list[int] = (8,), batch_size: int = 8, stride: int = 1,
                 seed: int = 0, max_steps: int = 1000, val_batches: int = 4,
                 num_workers: int = 0, train_split: str = "train", val_split: str = "val",
                 pixels_per_batch: int | None = None, occlusion_share: float = 0.0, p_reverse: float = 0.0,
                 push_share: float = 0.0, window_captions: bool = False, start_share: float = 0.0,
                 p_mirror: float = 0.0):
        super().__init__()
        if not stores:
            raise ConfigError("give at least one store", field="data.stores")
        windows = [windows] if isinstance(windows, int) else list(windows)
        for name, v in (("batch_size", batch_size), ("stride", stride), ("max_steps", max_steps),
                        ("pixels_per_batch", 1 if pixels_per_batch is None else pixels_per_batch)):
            if v < 1:
                raise ConfigError(f"must be >= 1, got {v}", field=f"data.{name}")
        shares = {"occlusion": occlusion_share, "push": push_share, "start": start_share}  # keyed as FOCUS
        for name, share in shares.items():
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"must be in [0, 1], got {share}", field=f"data.{name}_share")
        if sum(shares.values()) > 1.0:
            raise ConfigError(f"occlusion_share + push_share + start_share must be at most 1, got "
                              f"{sum(shares.values())}", field="data.start_share" if start_share else "data.push_share")
        for name, p in (("p_reverse", p_reverse), ("p_mirror", p_mirror)):
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"must be in [0, 1], got {p}", field=f"data.{name}")
        if any(w < 1 for w in windows):
            raise ConfigError(f"window lengths must be >= 1, got {windows}", field="data.windows")
        self.stores, self.windows = [str(s) for s in stores], windows
        self.batch_size, self.stride, self.pixels_per_batch = batch_size, stride, pixels_per_batch
        self.seed, self.max_steps, self.val_batches, self.num_workers = seed, max_steps, val_batches, num_workers
        self.train_split, self.val_split = train_split, val_split
        self.shares, self.p_reverse, self.p_mirror = shares, p_reverse, p_mirror
        self.window_captions = window_captions
        self._parts: dict[str, list[EpisodeArrays]] = {}

    # --- what the model needs to know (linked into the model's config by the CLI) -----------------------------

    def describe(self) -> dict:
        """Scene, resolutions, frame skip, fps, cameras and action size of the stores (read without loading frames),
        whether training plays clips backward (`time_reversed`: the weights can extend a clip into its past), and
        whether each clip is captioned as a clip of its own (`window_captions`)."""
        metas = [open_store(p).attrs for p in self.stores]
        first = metas[0]
        name = first["scene"]
        names = param_names(get_scene(name).spec) if name in scene_names() else []
        if self.p_reverse > 0 and len(first["action_low"]):
            raise ConfigError(f"{name} has actions, and an action does not undo itself played backward: clips of "
                              f"actuated scenes cannot be reversed", source=self.stores[0], field="data.p_reverse")
        if self.p_mirror > 0 and len(first["action_low"]):
            raise ConfigError(f"{name} has actions, and an action's direction does not flip with the frames: clips "
                              f"of actuated scenes cannot be mirrored", source=self.stores[0], field="data.p_mirror")
        return {"name": name, "resolution": [list(m["resolution"]) for m in metas],
                "frame_skip": int(first["frame_skip"]), "fps": float(first["fps"]), "cameras": list(first["cameras"]),
                "action_dim": len(first["action_low"]), "action_low": list(first["action_low"]),
                "action_high": list(first["action_high"]), "param_names": names, "windows": self.windows,
                "time_reversed": self.p_reverse > 0, "window_captions": self.window_captions}

    # --- Lightning hooks ----------------------------------------------------------------------------------------

    def _load(self, split: str) -> list[EpisodeArrays]:
        if split not in self._parts:
            try:
                events = (self.shares["occlusion"] > 0 or self.shares["push"] > 0) and split == self.train_split
                parts = [EpisodeArrays(open_store(Path(p) if "://" not in p else p), split, events,
                                       self.window_captions) for p in self.stores]
            except StoreError as e:  # a missing or empty split: name the setting that chose it
                if e.field in ("split", split):
                    e.field = "data.train_split" if split == self.train_split else "data.val_split"
                raise
            _check_compatible(parts)
            if self.p_mirror > 0 and split == self.train_split:
                for part in parts:
                    _check_mirror_symmetric(part)
            self._parts[split] = parts
        return self._parts[split]

    def _buckets(self, parts: list[EpisodeArrays], split: str) -> list[Bucket]:
        asked = [k for k in FOCUS if self.shares[k] > 0 and split == self.train_split]
        buckets = []
        for si, part in enumerate(parts):
            for T in self.windows:
                eps, starts = [], []
                held: dict[str, list[np.ndarray]] = {k: [] for k in asked}
                for e, n in enumerate(part.lengths):
                    s = np.arange(0, n - T + 1, self.stride)
                    eps.append(np.full(len(s), e))
                    starts.append(s)
                    for kind in asked:
                        held[kind].append(HOLDS[kind](s, T, part.focus[kind][e]))
                eps, starts = np.concatenate(eps), np.concatenate(starts)
                if len(starts) == 0:
                    raise StoreError(f"no episode of split {split!r} has {T} frames (longest: {part.lengths.max()})",
                                     source=part.path, field="data.windows")
                bs = bucket_batch_size(self.batch_size, self.pixels_per_batch, T, part.resolution)
                focus = {kind: np.flatnonzero(np.concatenate(h)) for kind, h in held.items()}
                buckets.append(Bucket(si, T, eps, starts, bs, focus))
        for kind in asked:
            if not any(len(b.focus[kind]) for b in buckets):
                raise ConfigError(f"no training window of {self.windows} frames holds {FOCUS[kind]} in {self.stores}",
                                  field=f"data.{kind}_share")
        return buckets

    def setup(self, stage: str | None = None) -> None:
        self.train_parts = self._load(self.train_split)
        self.train_buckets = self._buckets(self.train_parts, self.train_split)
        if self.val_batches > 0:
            self.val_parts = self._load(self.val_split)
            self.val_buckets = self._buckets(self.val_parts, self.val_split)

    def _global_step(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_step) if trainer is not None else 0

    def _rank(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        return (int(trainer.global_rank), int(trainer.world_size)) if trainer is not None else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._rank()
        sampler = StepBatchSampler(self.train_buckets, self.seed, self.max_steps, self._global_step, rank, world,
                                   self.shares, self.p_reverse, self.p_mirror)
        ds = WindowDataset(self.train_parts, self.train_buckets)
        return StepDataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_batches == 0:  # no validation (Lightning skips an empty list)
            return []
        # Fixed batches: the validation loss is comparable between runs and steps.
        rank, world = self._rank()
        sampler = StepBatchSampler(self.val_buckets, self.seed + 1, self.val_batches, rank=rank, world=world)
        ds = WindowDataset(self.val_parts, self.val_buckets)
        return StepDataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=self.num_workers)

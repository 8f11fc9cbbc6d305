"""The zarr v3 episode store: create it, check it on open, grow it, write episodes into it, read them back.

Layout (the contract is docs/data.md; the array table is `schema.ARRAYS`):

    STORE/zarr.json            root group; attributes: scene, resolution, fps, frame_skip, schema version, ...
    STORE/<split>/             one group per split (train, val, test, ood, heldout, ...)
        frames, qpos, ...      per-frame arrays, first axis = slot x slot_frames + frame, chunked along time
        episode_*, committed   per-episode arrays, first axis = slot (= episode index), one chunk per episode
    STORE/claims/              who is writing which episodes (claims.py)

Episodes have a fixed slot of `slot_frames` rows at a known offset (index x slot_frames), and no two episodes
share a chunk, so any number of processes or machines can fill disjoint episodes of one store without
coordinating. An episode's chunks are written first and its `committed` mark last: readers (this module and any
plain-zarr reader that honours `committed`) see only complete episodes. zarr's local store writes every chunk to a
temporary file and renames it, so a killed writer leaves no torn chunk either.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import ZstdCodec
from zarr.core.sync import sync  # runs a coroutine on zarr's own event loop (what zarr's sync API does)

from worldsim.data.claims import CLAIMS_DIR
from worldsim.data.schema import ARRAY_SPECS, ARRAYS, ROOT_ATTRS, SCHEMA_NAME, SCHEMA_VERSION, present, tail_shape
from worldsim.errors import StoreError

# Attributes that must match when appending to (or resuming) a store: episodes of one store are comparable.
MATCHED_ROOT_ATTRS = ("schema_version", "scene", "source", "resolution", "frame_skip", "frames_per_episode",
                      "slot_frames", "cameras", "objects", "action_low", "action_high", "seed", "holdout")
MATCHED_SPLIT_ATTRS = ("distribution", "ranges", "policy", "reset_options")
CHUNK_BYTES = 1 << 20  # frames per time chunk: about 1 MiB of raw pixels (zstd takes it to tens of KiB)
ZSTD_LEVEL = 3  # issue 4 measured level 3 at 44x on MuJoCo frames and ~100 MB/s


def chunk_frames(frames_per_episode: int, height: int, width: int) -> int:
    """Rows per time chunk of `frames`: at most ~CHUNK_BYTES, splitting an episode into equal chunks (so the
    slot wastes less than one chunk)."""
    target = max(1, CHUNK_BYTES // (height * width * 3))
    pieces = -(-frames_per_episode // target)
    return -(-frames_per_episode // pieces)


def slot_frames(frames_per_episode: int, chunk: int) -> int:
    """An episode's slot: its frames rounded up to whole chunks, so no chunk holds rows of two episodes."""
    return -(-frames_per_episode // chunk) * chunk


def is_url(path: str | Path) -> bool:
    """An fsspec URL (s3://, gs://, file://, ...) rather than a local folder."""
    return "://" in str(path)


def open_group(location: str | Path, mode: str) -> zarr.Group:
    """A zarr v3 group at a local folder or an fsspec URL. fsspec's local file system creates parent folders only
    when asked (`auto_mkdir`); object stores have no folders to create."""
    options = {"auto_mkdir": True} if str(location).startswith("file://") else None
    return zarr.open_group(str(location), mode=mode, zarr_format=3, storage_options=options)


def _exists(location: str | Path) -> bool:
    try:
        zarr.open_group(str(location), mode="r", zarr_format=3)
        return True
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return False


def _dims(attrs: dict) -> dict[str, int]:
    h, w = attrs["resolution"]
    return {"H": h, "W": w, "A": len(attrs["action_low"]), "nq": attrs["nq"], "nv": attrs["nv"], "nu": attrs["nu"],
            "K": len(attrs["objects"])}


def _check_format(path: Path) -> None:
    """Refuse what is not a zarr v3 group before zarr guesses (a v2 store would open in v2 mode)."""
    if not path.exists():
        raise StoreError("no store here", source=path, field="store")
    if (path / ".zgroup").exists() or (path / ".zarray").exists():
        raise StoreError("this is a zarr v2 store; worldsim stores are zarr v3 (schema "
                         f"{SCHEMA_NAME} v{SCHEMA_VERSION}, docs/data.md)", source=path, field="zarr_format")
    if not (path / "zarr.json").exists():
        raise StoreError("not a zarr v3 store (no zarr.json)", source=path, field="zarr.json")


def _check_root(path, attrs: dict) -> None:
    if attrs.get("schema") != SCHEMA_NAME:
        raise StoreError(f"not a worldsim episode store (root attribute `schema` is {attrs.get('schema')!r}, "
                         f"expected {SCHEMA_NAME!r})", source=path, field="schema")
    if attrs.get("schema_version") != SCHEMA_VERSION:
        raise StoreError(f"schema version {attrs.get('schema_version')!r}; this worldsim reads version {SCHEMA_VERSION} "
                         "(docs/data.md)", source=path, field="schema_version")
    missing = [k for k in ROOT_ATTRS if k not in attrs]
    if missing:
        raise StoreError("root attribute is missing", source=path, field=missing[0])


def _expected_arrays(attrs: dict) -> list[str]:
    return [a.name for a in ARRAYS if present(a, len(attrs["objects"]), attrs["rewards"])]


def _check_split(path, attrs: dict, group: zarr.Group, split: str) -> None:
    have = set(group.array_keys())
    dims = _dims(attrs)
    for name in _expected_arrays(attrs):
        if name not in have:
            raise StoreError("array is missing", source=path, field=f"{split}/{name}")
        spec, arr = ARRAY_SPECS[name], group[name]
        shape = tail_shape(spec, dims)
        if tuple(arr.shape[1:]) != shape:
            raise StoreError(f"shape {arr.shape} does not end in {shape}", source=path, field=f"{split}/{name}")
        if spec.dtype != "str" and np.dtype(arr.dtype) != np.dtype(spec.dtype):
            raise StoreError(f"dtype {arr.dtype}, expected {spec.dtype}", source=path, field=f"{split}/{name}")


class EpisodeStore:
    """A worldsim store opened for reading; checked against the schema on open."""

    def __init__(self, path: str | Path):
        self.path = path if is_url(path) else Path(path)
        if isinstance(self.path, Path):
            _check_format(self.path)
        try:
            self.root = open_group(self.path, mode="r")
        except Exception as e:  # zarr raises several types for a missing or malformed zarr.json
            raise StoreError(f"cannot open as a zarr v3 group: {e}", source=path) from None
        self.attrs = dict(self.root.attrs)
        _check_root(path, self.attrs)
        # groups and arrays are opened once (each open reads metadata); reopen the store to see it grow
        self._groups = {k: self.root[k] for k in sorted(self.root.group_keys()) if k != CLAIMS_DIR}
        self._arrays: dict[tuple[str, str], zarr.Array] = {}
        for split, group in self._groups.items():
            _check_split(path, self.attrs, group, split)

    def splits(self) -> list[str]:
        return list(self._groups)

    def split(self, name: str) -> zarr.Group:
        if name not in self._groups:
            raise StoreError(f"no split {name!r}; the store has {self.splits()}", source=self.path, field="split")
        return self._groups[name]

    def array(self, split: str, name: str) -> zarr.Array:
        key = (split, name)
        if key not in self._arrays:
            self._arrays[key] = self.split(split)[name]
        return self._arrays[key]

    def committed(self, split: str) -> np.ndarray:
        """Indices of the complete episodes of a split (readers must only read these)."""
        return np.flatnonzero(self._read(split, "committed", slice(None)) == 1)

    def _read(self, split: str, name: str, sel) -> np.ndarray:
        return self._read_many(split, {name: sel})[name]

    def _read_many(self, split: str, selections: dict) -> dict[str, np.ndarray]:
        """{array: selection} read concurrently in one round trip to zarr's event loop (one call per array
        costs ~1 ms each); a chunk that fails to decode is an error naming its array."""
        arrays = {name: self.array(split, name) for name in selections}

        async def read_all():
            return await asyncio.gather(*(arrays[n].async_array.getitem(sel) for n, sel in selections.items()),
                                        return_exceptions=True)

        out = {}
        for (name, sel), got in zip(selections.items(), sync(read_all())):
            if isinstance(got, BaseException):  # a truncated or corrupt chunk fails in the codec
                raise StoreError(f"cannot read rows {sel}: {type(got).__name__}: {got} (truncated or corrupt chunk?)",
                                 source=self.path, field=f"{split}/{name}")
            out[name] = got
        return out

    def episode(self, split: str, index: int, arrays: Iterable[str] | None = None) -> dict:
        """One committed episode: per-frame arrays cut to its valid frames, plus its per-episode fields."""
        n_slots = self.array(split, "committed").shape[0]
        if not (0 <= index < n_slots) or int(self._read(split, "committed", index)) != 1:
            raise StoreError(f"episode {index} is not committed (complete) in split {split!r}", source=self.path,
                             field=f"{split}/committed")
        bounds = self._read_many(split, {"episode_start": index, "episode_length": index})
        start, length = int(bounds["episode_start"]), int(bounds["episode_length"])
        names = _expected_arrays(self.attrs) if arrays is None else list(arrays)
        rows = slice(start, start + length)
        out: dict = {"split": split, "index": index}
        out.update(self._read_many(split, {n: rows if ARRAY_SPECS[n].per == "frame" else index for n in names}))
        for name in ("params", "caption_events"):
            if name in out:
                out[name] = json.loads(str(out[name]))
        if "caption" in out:
            out["caption"] = str(out["caption"])
        return out

    def verify(self) -> int:
        """Read every committed episode in full (every chunk decoded); return the number checked."""
        n = 0
        for split in self.splits():
            for i in self.committed(split):
                self.episode(split, int(i))
                n += 1
        return n


def open_store(path: str | Path) -> EpisodeStore:
    return EpisodeStore(path)


# --- writing ----------------------------------------------------------------------------------------------------


def _check_writable(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{time.monotonic_ns()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise StoreError(f"cannot write here: {e.strerror or e}", source=path, field="store") from None


def prepare(path: str | Path, root_attrs: dict, split: str, split_attrs: dict, capacity: int, claims) -> None:
    """Create the store and the split (or check they match this run), and grow the split to `capacity` episodes.
    Runs under the store-wide lock (none on object storage: there, one writer creates the store before others
    start); every other step of recording writes only the writer's own episodes."""
    if not is_url(path):
        path = Path(path)
        _check_writable(path)
        if (path / ".zgroup").exists():
            _check_format(path)
    claims.lock_store()
    try:
        if (path / "zarr.json").exists() if isinstance(path, Path) else _exists(path):
            root = open_group(path, mode="r+")
            have = dict(root.attrs)
            _check_root(path, have)
            for key in MATCHED_ROOT_ATTRS:
                if _norm(have.get(key)) != _norm(root_attrs[key]):
                    raise StoreError(f"the store was recorded with {key} = {have.get(key)!r}; this run has "
                                     f"{root_attrs[key]!r} (use another store, or the store's settings)",
                                     source=path, field=key)
        else:
            root = open_group(path, mode="a")  # under the lock, no zarr.json yet
            root.attrs.update(root_attrs)
            have = root_attrs
        if split in root.group_keys():
            group = root[split]
            _check_split(path, have, group, split)
            for key in MATCHED_SPLIT_ATTRS:
                if _norm(group.attrs.get(key)) != _norm(split_attrs[key]):
                    raise StoreError(f"split {split!r} was recorded with {key} = {group.attrs.get(key)!r}; this run has "
                                     f"{split_attrs[key]!r}", source=path, field=f"{split}.{key}")
        else:
            group = _create_split(root, have, split, split_attrs)
        _grow(group, have, capacity)
    finally:
        claims.unlock_store()


def _norm(v):
    """Compare attributes as JSON (tuples and lists alike)."""
    return json.loads(json.dumps(v))


def _create_split(root: zarr.Group, attrs: dict, split: str, split_attrs: dict) -> zarr.Group:
    group = root.create_group(split)
    dims = _dims(attrs)
    chunk = attrs["chunk_frames"]
    names = _expected_arrays(attrs)
    for name in names:
        spec = ARRAY_SPECS[name]
        tail = tail_shape(spec, dims)
        # frames: ~1 MiB time chunks, written as they fill; the small per-frame arrays: one chunk per episode slot
        # (zarr's cost is per chunk, and they are written once, at the episode's end); per-episode arrays: one
        # chunk per episode, so writers of different episodes never touch the same file.
        first = (chunk if name == "frames" else attrs["slot_frames"]) if spec.per == "frame" else 1
        group.create_array(name, shape=(0, *tail), chunks=(first, *(max(1, t) for t in tail)),
                           dtype=str if spec.dtype == "str" else spec.dtype, compressors=ZstdCodec(level=ZSTD_LEVEL),
                           fill_value="" if spec.dtype == "str" else 0, attributes={"meaning": spec.meaning})
    group.attrs.update({**split_attrs, "arrays": names})
    return group


def _grow(group: zarr.Group, attrs: dict, capacity: int) -> None:
    """Grow every array of a split to hold `capacity` episodes (never shrink: other writers' episodes live there)."""
    for name in group.attrs["arrays"]:
        arr = group[name]
        rows = capacity * attrs["slot_frames"] if ARRAY_SPECS[name].per == "frame" else capacity
        if arr.shape[0] < rows:
            arr.resize((rows, *arr.shape[1:]))

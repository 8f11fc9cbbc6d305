"""Writing episodes into their slots: `EpisodeWriter` (zarr calls) and `BackgroundWriter` (the same, on a thread).

zarr's cost per chunk write is mostly waiting — each chunk is encoded and saved through two `asyncio.to_thread`
hops on zarr's event loop — so a recorder that waited for each write spent ~20% of its wall time there at 64 px
(measured). `BackgroundWriter` hands writes to one thread in order (FIFO: an episode's frames, then its states and
per-episode fields, then its commit mark) while the recorder simulates the next frames.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from zarr.core.sync import sync  # runs a coroutine on zarr's own event loop (what zarr's sync API does)

from worldsim.data.schema import ARRAY_SPECS
from worldsim.data.store import open_group
from worldsim.errors import StoreError


class EpisodeWriter:
    """Writes whole episodes into their slots of one split: time chunks as they fill, the commit mark last."""

    def __init__(self, path: str | Path, split: str):  # a local folder or an fsspec URL
        self.path, self.split = path, split
        self.root = open_group(path, mode="r+")
        self.attrs = dict(self.root.attrs)
        self.group = self.root[split]
        self.names = list(self.group.attrs["arrays"])
        self.arrays = {n: self.group[n] for n in self.names}
        self.frame_names = [n for n in self.names if ARRAY_SPECS[n].per == "frame"]
        self.state_names = [n for n in self.frame_names if n != "frames"]
        self.slot = self.attrs["slot_frames"]
        self.chunk = self.arrays["frames"].chunks[0]

    def remove_partials(self, indices: list[int]) -> int:
        """Delete zarr's temporary chunk files (`<chunk>.<uuid>.partial`) of episodes `indices`: a writer killed
        between writing one and renaming it leaves it behind. Only for episodes the caller has claimed (no live
        writer is using them); local stores only. Returns how many were removed."""
        wanted, removed = set(indices), 0
        for name, arr in self.arrays.items():
            folder = Path(self.path) / self.split / name / "c"
            rows = arr.chunks[0] if ARRAY_SPECS[name].per == "frame" else self.slot  # slot rows per chunk
            for p in folder.rglob("*.partial") if folder.is_dir() else ():
                first = p.relative_to(folder).parts[0].split(".")[0]  # the chunk's index along the first axis
                if first.isdigit() and int(first) * rows // self.slot in wanted:
                    p.unlink(missing_ok=True)
                    removed += 1
        return removed

    def uncommitted(self, indices: range) -> list[int]:
        """The episodes of a range without a commit mark (one read of the range, not one per episode)."""
        marks = self.arrays["committed"][indices.start:indices.stop]
        return [i for i, m in zip(indices, marks) if m != 1]

    def _write(self, items: dict[str, tuple]) -> None:
        """{array: (selection, value)} written concurrently in one round trip to zarr's event loop: one at a time,
        zarr's per-call overhead (~1-2 ms) cost more than simulating the frames on small images."""

        async def write_all():
            await asyncio.gather(*(self.arrays[n].async_array.setitem(sel, v) for n, (sel, v) in items.items()))

        sync(write_all())

    @contextmanager
    def _io(self, index: int, array: str):
        """A failed write (disk full, read-only or vanished folder) as a StoreError naming the array; the episode
        stays uncommitted (its mark is written last), so the store stays readable and a rerun records it."""
        try:
            yield
        except OSError as e:
            where = str(e.filename or "")
            part = where.split(f"/{self.split}/", 1)[1].split("/")[0] if f"/{self.split}/" in where else array
            raise StoreError(f"cannot write episode {index}: {e.strerror or e}; the episode stays uncommitted, the "
                             "committed ones are intact, and running the same command again records the rest",
                             source=self.path, field=f"{self.split}/{part}") from None

    def write_frames(self, index: int, row: int, frames: np.ndarray) -> None:
        """Write whole time chunks of frames (n, H, W, 3) at frame `row` of episode `index`'s slot."""
        start = index * self.slot + row
        with self._io(index, "frames"):
            self.arrays["frames"][start:start + len(frames)] = frames

    def commit(self, index: int, states: dict[str, np.ndarray], length: int, env_seed: int, params: str,
               caption: str, caption_events: str) -> None:
        """The episode's per-frame state arrays ((slot_frames, ...) each, padded) and per-episode fields, then the
        commit mark (last: a reader that sees it sees a complete episode). Its frames must be written already."""
        one = slice(index, index + 1)
        rows = slice(index * self.slot, (index + 1) * self.slot)
        with self._io(index, "committed"):
            self._write({**{n: (rows, states[n]) for n in self.state_names},
                         "episode_start": (one, np.array([index * self.slot], np.int64)),
                         "episode_length": (one, np.array([length], np.int32)),
                         "episode_index": (one, np.array([index], np.int64)),
                         "env_seed": (one, np.array([env_seed], np.uint64)),
                         "params": (one, np.array([params], dtype=object)),
                         "caption": (one, np.array([caption], dtype=object)),
                         "caption_events": (one, np.array([caption_events], dtype=object))})
            self.arrays["committed"][index] = 1  # only after every write above has completed


class BackgroundWriter:
    """An `EpisodeWriter` driven from one thread, in submission order. `committed()` returns the episodes whose
    commit mark is written since the last call; `flush()` waits for everything. A write error is raised by the
    next call from the recording thread."""

    def __init__(self, writer: EpisodeWriter, depth: int = 8):
        self.writer = writer
        self._queue: queue.Queue = queue.Queue(maxsize=depth)  # bounded: at most `depth` chunks held in memory
        self._done: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="worldsim-writer", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._error is None:
                    method, args = item
                    getattr(self.writer, method)(*args)
                    if method == "commit":
                        self._done.put((args[0], args[2]))
            except BaseException as e:  # handed to the recording thread
                self._error = e
            finally:
                self._queue.task_done()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def write_frames(self, *args) -> None:
        self._check()
        self._queue.put(("write_frames", args))

    def commit(self, *args) -> None:
        self._check()
        self._queue.put(("commit", args))

    def committed(self) -> list[tuple[int, int]]:
        """(index, length) of the episodes committed since the last call."""
        self._check()
        out = []
        while not self._done.empty():
            out.append(self._done.get())
        return out

    def flush(self) -> None:
        self._queue.join()
        self._check()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

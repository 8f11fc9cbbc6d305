"""Claims: who is writing which episodes of a store, so two writers pointed at the same episodes are refused.

A claim is a directory `claims/<split>.<index>` (or `claims/store` for the short store-wide lock taken while
creating the store or growing its arrays) inside the store. `os.mkdir` is atomic and fails if the directory
exists, so exactly one process wins each claim. The directory is also an (empty) zarr group whose attributes name
the holder (host, pid, process start time), so plain zarr lists it without warnings.

A claim whose holder is dead (same host, and no process with that pid and start time) is stale — left by a crash
or SIGKILL — and is broken by renaming it away (atomic too, so two processes breaking it cannot both win). A claim
held from another host cannot be checked and is refused; `break_claims=True` overrides after the user checked.
Claims need a file system with atomic mkdir/rename (local disks, NFS v3+); on object storage, write disjoint
episode ranges instead (see docs/data.md).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import uuid
from pathlib import Path

from worldsim.errors import StoreError

CLAIMS_DIR = "claims"
_GROUP_META = {"zarr_format": 3, "node_type": "group"}


def _proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (Linux), to tell a live pid from a reused one."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def _me() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "proc_start": _proc_start(os.getpid()),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _holder(path: Path) -> dict | None:
    try:
        return json.loads((path / "zarr.json").read_text()).get("attributes", {}).get("holder")
    except (OSError, ValueError):
        return None


def _alive(holder: dict | None, path: Path) -> bool:
    """Whether the holder may still be writing. A claim without a holder yet (its writer is between mkdir and
    writing zarr.json, or died there) counts as alive for 10 s."""
    if holder is None:
        try:
            return time.time() - path.stat().st_mtime < 10.0
        except FileNotFoundError:
            return False
    if holder.get("host") != socket.gethostname():
        return True
    start = holder.get("proc_start")
    return start is not None and _proc_start(int(holder["pid"])) == start


def _describe(holder: dict | None) -> str:
    if holder is None:
        return "an unknown process"
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


class Claims:
    """Takes and releases claims under `<store>/claims`."""

    def __init__(self, root: Path, break_claims: bool = False):
        self.dir = Path(root) / CLAIMS_DIR
        self.break_claims = break_claims
        self.held: set[str] = set()

    def _ensure_dir(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "zarr.json"
        if not meta.exists():
            tmp = self.dir / f".zarr.json.{uuid.uuid4().hex}"
            tmp.write_text(json.dumps({**_GROUP_META, "attributes": {"about": "worldsim writer claims"}}))
            os.replace(tmp, meta)

    def try_take(self, name: str) -> dict | None:
        """Take claim `name`; return None on success, else the live holder's description (dict)."""
        self._ensure_dir()
        path = self.dir / name
        for _ in range(3):
            try:
                path.mkdir()
            except FileExistsError:
                holder = _holder(path)
                if holder is None:  # just created by someone who has not written its holder yet
                    time.sleep(0.05)
                    holder = _holder(path)
                if _alive(holder, path) and not self.break_claims:
                    return holder or {}
                self._break(path)
                continue
            (path / "zarr.json").write_text(json.dumps({**_GROUP_META, "attributes": {"holder": _me()}}))
            self.held.add(name)
            return None
        return _holder(path) or {}

    def take(self, name: str, what: str) -> None:
        holder = self.try_take(name)
        if holder is not None:
            raise StoreError(f"{what} is being written by {_describe(holder)}; refusing to interleave "
                             f"(if that process is gone, remove {self.dir / name})", source=self.dir.parent, field=name)

    def _break(self, path: Path) -> None:
        grave = path.with_name(f".broken.{path.name}.{uuid.uuid4().hex}")
        try:
            os.rename(path, grave)
        except FileNotFoundError:
            return  # someone else broke it first
        shutil.rmtree(grave, ignore_errors=True)

    def sweep(self, prefix: str) -> int:
        """Break every stale claim whose name starts with `prefix` (a writer killed after committing an episode
        but before releasing its claim leaves one behind); return how many."""
        if not self.dir.is_dir():
            return 0
        n = 0
        for path in self.dir.iterdir():
            if path.name.startswith(prefix) and path.name not in self.held and not _alive(_holder(path), path):
                self._break(path)
                n += 1
        return n

    def release(self, name: str) -> None:
        if name in self.held:
            shutil.rmtree(self.dir / name, ignore_errors=True)
            self.held.discard(name)

    def release_all(self) -> None:
        for name in list(self.held):
            self.release(name)

    def lock_store(self, timeout: float = 30.0) -> None:
        """The store-wide lock, held only while creating the store or resizing arrays (a few ms)."""
        deadline = time.monotonic() + timeout
        while (holder := self.try_take("store")) is not None:
            if time.monotonic() > deadline:
                raise StoreError(f"the store is locked by {_describe(holder)} for more than {timeout:g} s",
                                 source=self.dir.parent, field="claims/store")
            time.sleep(0.05)

    def unlock_store(self) -> None:
        self.release("store")


class NoClaims:
    """Stand-in for `Claims` on object storage (fsspec URLs), which has no atomic mkdir: nothing is claimed, so
    writers must be given disjoint episode ranges (docs/data.md)."""

    held: set[str] = set()

    def take(self, name: str, what: str) -> None:
        pass

    def release(self, name: str) -> None:
        pass

    def release_all(self) -> None:
        pass

    def sweep(self, prefix: str) -> int:
        return 0

    def lock_store(self, timeout: float = 30.0) -> None:
        pass

    def unlock_store(self) -> None:
        pass

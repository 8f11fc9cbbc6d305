"""Worker processes for `record`: one rendering process per core, fed episode indices from a queue.

Workers are spawned, never forked: a forked EGL context is unusable, and spawning gives each worker a clean
interpreter whose environment (WORKER_ENV) limits every library to one thread — llvmpipe rasterises in the
calling thread, BLAS and torch use one thread — so N workers use N cores and no more. Each worker dies with
its parent (PR_SET_PDEATHSIG), so a SIGKILLed `record` leaves no orphan writing into the store.

Protocol: the parent puts every episode index, then one `None` per worker, on `tasks`; a worker reports
("ready", cpu) once its env is made, ("done", index, length) once an episode's commit mark is written,
("exit", cpu) when its queue is drained and its writes flushed (cpu: its process CPU seconds so far), or
("error", class name, message) and exits.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager

from worldsim import errors

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "LP_NUM_THREADS": "0"}  # llvmpipe: 0 = rasterise in the calling thread (1 would add a thread)


@contextmanager
def worker_environment():
    """WORKER_ENV for the processes spawned inside the block; the caller's environment is restored after."""
    saved = {k: os.environ.get(k) for k in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _worker(make_recorder: Callable, args: tuple, parent: int, tasks, results) -> None:
    _die_with_parent(parent)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    rec = None
    try:
        rec = make_recorder(*args)
        results.put(("ready", time.process_time()))
        while (index := tasks.get()) is not None:
            rec.record(index)
            for done in rec.writer.committed():
                results.put(("done", *done))
        rec.writer.flush()
        for done in rec.writer.committed():
            results.put(("done", *done))
        results.put(("exit", time.process_time()))
    except errors.WorldsimError as e:
        results.put(("error", type(e).__name__, str(e)))
    except BaseException:
        results.put(("error", "Exception", traceback.format_exc()))
    finally:
        if rec is not None:
            rec.close()


def run(make_recorder: Callable, args: tuple, todo: list[int], workers: int, on_done: Callable[[int, int], None],
        on_ready: Callable[[], None] = lambda: None) -> float:
    """Record `todo` with `workers` spawned processes, each building its recorder as `make_recorder(*args)`;
    call `on_done(index, length)` in this process as each episode is committed, `on_ready()` once every worker
    has started (its imports done, its env made). Returns the CPU seconds the workers spent after starting."""
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for i in todo:
        tasks.put(i)
    n = min(workers, len(todo))
    for _ in range(n):
        tasks.put(None)
    with worker_environment():
        procs = [ctx.Process(target=_worker, args=(make_recorder, args, os.getpid(), tasks, results), daemon=True)
                 for _ in range(n)]
        for p in procs:
            p.start()
    try:
        running, starting, cpu = n, n, 0.0
        while running:
            try:
                msg = results.get(timeout=1.0)
            except queue.Empty:
                dead = [p for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise errors.WorldsimError(f"a worker process died (exit code {dead[0].exitcode})") from None
                continue
            if msg[0] == "done":
                on_done(msg[1], msg[2])
            elif msg[0] == "ready":
                cpu -= msg[1]
                starting -= 1
                if not starting:
                    on_ready()
            elif msg[0] == "exit":
                cpu += msg[1]
                running -= 1
            else:
                cls = getattr(errors, msg[1], None)
                if isinstance(cls, type) and issubclass(cls, errors.WorldsimError):
                    raise cls(msg[2])
                raise RuntimeError(f"a worker failed:\n{msg[2]}")
        for p in procs:
            p.join()
        return cpu
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join()

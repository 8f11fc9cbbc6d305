"""`worldsim bench long`: a 1,000-episode recording (100 with `--quick`) with its memory sampled throughout, to show
it stays flat: a recorder that kept anything per episode (frames, states, events, zarr handles) would grow.

The recording runs in a freshly spawned process (one worker, the recorder's one-thread environment); this process
samples its resident set size (VmRSS from /proc) every 0.2 s together with the number of committed episodes (one
`committed` chunk file per episode). Figures: RSS once 10% of the episodes are done (imports, GL context and zarr
warmed up), at the end, the peak, and the growth between the two per 100 episodes. Not part of the default
`worldsim bench` run (it takes minutes); ask for it by name. Goal (issue 12): growth < 1 MiB per 100 episodes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path

from worldsim.bench.report import BenchReport

SCENE, RESOLUTION, FRAMES = "bounce", 32, 32


def _record(store: str, episodes: int) -> None:
    from worldsim.data.recorder import RecordConfig, record

    record(RecordConfig(store=store, scene=SCENE, episodes=episodes, frames=FRAMES, resolution=RESOLUTION,
                        progress=False))


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _committed(store: Path) -> int:
    try:
        return sum(1 for p in (store / "train" / "committed" / "c").iterdir() if not p.name.endswith(".partial"))
    except OSError:
        return 0


def measure(episodes: int, interval: float = 0.2) -> dict:
    """Record `episodes` in a spawned process; [(seconds, committed episodes, RSS MiB)] samples and the totals."""
    from worldsim.data.workers import worker_environment

    with tempfile.TemporaryDirectory() as tmp, worker_environment():
        store = Path(tmp) / "long.zarr"
        proc = mp.get_context("spawn").Process(target=_record, args=(str(store), episodes))
        t0 = time.perf_counter()
        proc.start()
        samples = []
        while proc.is_alive():
            rss = _rss_mib(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, _committed(store), rss))
            time.sleep(interval)
        proc.join()
        seconds = time.perf_counter() - t0
        if proc.exitcode != 0:
            raise RuntimeError(f"the recording process failed (exit code {proc.exitcode})")
        done = _committed(store)
    return {"samples": samples, "seconds": seconds, "episodes": done}


def _rss_at(samples: list, episodes: int) -> float:
    """RSS of the first sample with at least `episodes` committed."""
    return next(rss for _, n, rss in samples if n >= episodes)


def run(quick: bool = False) -> BenchReport:
    episodes = 100 if quick else 1000
    got = measure(episodes)
    samples = got["samples"]
    early_n = max(1, episodes // 10)
    early = _rss_at(samples, early_n)
    late = [rss for _, n, rss in samples if n >= early_n]
    end, peak = late[-1], max(late)
    per_100 = (end - early) / (got["episodes"] - early_n) * 100 if got["episodes"] > early_n else 0.0
    report = BenchReport("long")
    px = f"{SCENE} {RESOLUTION}px x {FRAMES} frames"
    report.add(f"recording {episodes} episodes ({px}): RSS after {early_n} episodes", early, "MiB")
    report.add(f"recording {episodes} episodes: RSS at the end", end, "MiB", f"RSS after {early_n} episodes", early)
    report.add(f"recording {episodes} episodes: peak RSS after {early_n} episodes", peak, "MiB",
               f"RSS after {early_n} episodes", early)
    report.add("RSS growth per 100 episodes (after the first 10%)", per_100, "MiB")
    report.add(f"recording {episodes} episodes: frames/s", got["episodes"] * FRAMES / got["seconds"], "frames/s")
    report.notes.append(f"{len(samples)} RSS samples every 0.2 s of a spawned recording process (1 worker); goal: "
                        "growth < 1 MiB per 100 episodes; the 10,000-step rollout figure: `worldsim bench rollout`")
    report.notes.append("RSS by committed episodes: " + ", ".join(
        f"{n}: {rss:.1f}" for n, rss in _thin([(n, rss) for _, n, rss in samples], 8)))
    return report


def _thin(pairs: list, k: int) -> list:
    """At most k pairs, evenly spaced, the last included."""
    if len(pairs) <= k:
        return pairs
    step = (len(pairs) - 1) / (k - 1)
    return [pairs[round(i * step)] for i in range(k)]

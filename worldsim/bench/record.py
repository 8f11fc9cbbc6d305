"""`worldsim bench record`: recorder frames/s with 1 and 2 workers beside the bare loop rendering the same images.

The bare loop runs the same episodes (same reset seeds, so the same objects) with the same physics steps and the
same renders — colour, segmentation, and one isolated segmentation per active object — called on MuJoCo directly,
with nothing stored. Every measurement runs in a freshly spawned process with one render/BLAS thread (the
recorder's worker environment), so the comparison is per core. Recorder figures are frames over the wall time of
the whole `record()` call (store creation, worker start-up and the final commits included), and again over the
time after every worker had started (imports and GL context: ~1-2 s per spawned process).
Goals (issue 4): recorder >= 0.8x the bare loop per worker; 2 workers >= 1.8x one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

from worldsim.bench.report import BenchReport

SCENE, RESOLUTION, EPISODE_FRAMES = "bounce", 64, 100


def _bare(episodes: int, frames: int) -> float:
    """frames/s of the bare loop over the recorder's episodes (worker process)."""
    from worldsim.bench.bare import BareLoop
    from worldsim.data.splits import episode_seeds
    from worldsim.sim.registry import make

    env = make(SCENE, resolution=RESOLUTION)
    loop = BareLoop(env)
    elapsed = cpu = 0.0
    for i in range(episodes):
        env.reset(seed=episode_seeds(0, "train", i).env, options={"distribution": "id"})
        t, c = time.perf_counter(), time.process_time()
        for f in range(frames):
            loop.frame(step=f > 0)
        elapsed += time.perf_counter() - t
        cpu += time.process_time() - c
    loop.close()
    env.close()
    return episodes * frames / elapsed, episodes * frames / cpu


def _env(episodes: int, frames: int) -> float:
    """frames/s of the scene's env alone (step + render + info, nothing stored), same episodes."""
    import numpy as np

    from worldsim.data.splits import episode_seeds
    from worldsim.sim.registry import make

    env = make(SCENE, resolution=RESOLUTION)
    action = np.zeros(env.action_space.shape, np.float32)
    elapsed = cpu = 0.0
    for i in range(episodes):
        t, c = time.perf_counter(), time.process_time()
        env.reset(seed=episode_seeds(0, "train", i).env, options={"distribution": "id"})
        for _ in range(frames - 1):
            env.step(action)
        elapsed += time.perf_counter() - t
        cpu += time.process_time() - c
    env.close()
    return episodes * frames / elapsed, episodes * frames / cpu


def _record(episodes: int, frames: int, workers: int) -> tuple[float, float, float]:
    """frames/s of `record()`: over the wall time of the whole call and after the workers' start-up, and frames
    per CPU-second after start-up (all threads and workers summed)."""
    from worldsim.data.recorder import RecordConfig, record

    with tempfile.TemporaryDirectory() as tmp:
        cfg = RecordConfig(store=os.path.join(tmp, "bench.zarr"), scene=SCENE, episodes=episodes, frames=frames,
                           resolution=RESOLUTION, workers=workers, progress=False)
        t = time.perf_counter()
        result = record(cfg)
        wall = time.perf_counter() - t
        # result.seconds starts once the store is prepared and this process's env made; minus the workers' start-up
        return (result.frames / wall, result.frames / (result.seconds - result.startup_seconds),
                result.frames / result.cpu_seconds)


def _measure(episodes: int, rounds: int) -> tuple:
    """Bare loop, env alone, recorder with 1 worker (in this process), recorder with 2 (spawned), interleaved
    over `rounds` rounds, in a spawned process; the best round of each. Other work on the machine slows some
    rounds; interleaving exposes every measurement to the same conditions and the best round is the least
    disturbed. With one worker the recorder runs in-process, so its start-up is only store and env creation."""
    _bare(1, 10)  # warm up: GL context, first renders
    best = [0.0] * 10
    for _ in range(rounds):
        got = (*_bare(episodes, EPISODE_FRAMES), *_env(episodes, EPISODE_FRAMES), *_record(episodes, EPISODE_FRAMES, 1),
               *_record(2 * episodes, EPISODE_FRAMES, 2))
        best = [max(b, g) for b, g in zip(best, got)]
    return best


def run(quick: bool = False) -> BenchReport:
    from worldsim.data.workers import worker_environment

    episodes, rounds = (2, 1) if quick else (5, 4)
    report = BenchReport("record")
    # one fresh process with the recorder's one-thread worker environment; its start-up is not in any figure
    with worker_environment(), ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        (bare, bare_cpu, env, env_cpu, one, one_run, one_cpu,
         two, two_run, two_cpu) = pool.submit(_measure, episodes, rounds).result()
    px = f"{SCENE} {RESOLUTION}px"
    report.add(f"bare loop {px} (1 process)", bare, "frames/s")
    report.add(f"env alone {px} (step + render + info, nothing stored)", env, "frames/s", "bare loop", bare)
    report.add(f"recorder {px}, 1 worker", one_run, "frames/s", "bare loop", bare)
    report.add(f"recorder {px}, 1 worker (vs env alone)", one_run, "frames/s", "env alone", env)
    report.add(f"recorder {px}, 2 workers", two_run, "frames/s", "recorder, 1 worker", one_run)
    report.add(f"recorder {px}, 2 workers, per worker", two_run / 2, "frames/s", "bare loop", bare)
    report.add(f"recorder {px}, 1 worker, whole call", one, "frames/s", "bare loop", bare)
    report.add(f"recorder {px}, 2 workers, whole call", two, "frames/s", "recorder, 1 worker, whole call", one)
    # per CPU-second: what each figure costs a core, whatever else the machine runs meanwhile
    report.add(f"bare loop {px}, per CPU-second", bare_cpu, "frames/CPU-s")
    report.add(f"env alone {px}, per CPU-second", env_cpu, "frames/CPU-s", "bare loop, per CPU-second", bare_cpu)
    report.add(f"recorder {px}, 1 worker, per CPU-second", one_cpu, "frames/CPU-s", "bare loop, per CPU-second", bare_cpu)
    report.add(f"recorder {px}, 2 workers, per CPU-second", two_cpu, "frames/CPU-s", "recorder, 1 worker, per CPU-second",
               one_cpu)
    report.notes.append(f"best of {rounds} interleaved rounds of {episodes} episodes x {EPISODE_FRAMES} frames (2 workers: "
                        f"twice that); goals: 1 worker >= 0.8x bare, "
                        f"2 workers >= 1.8x one; {os.cpu_count()} cores on this machine, shared with whatever else runs")
    report.notes.append("recorder rows: frames/s once the store is prepared and the workers have started; 'whole call' "
                        "rows: over the whole record() call (store creation, env creation, worker spawn included)")
    return report

"""`worldsim record`: simulate episodes and write them into a zarr v3 store (layout: store.py, docs/data.md).

    worldsim record out.zarr --scene bounce --episodes 100 --frames 64 --resolution 64 --workers 2
    worldsim record --config configs/record/bounce_debug.yaml --split val --episodes 10

The Python function behind it is `record(RecordConfig(...))`. Episodes are claimed (claims.py), recorded — in this
process for one worker, else by one spawned process per worker — and committed one by one; the run skips
episodes already committed, so running the same command again after an interruption completes the rest, and a
larger `episodes` (or a later `start`) appends. Worker processes are spawned, never forked (a forked EGL context
is unusable), and each runs one render thread (llvmpipe) and one BLAS/torch thread so N workers use N cores.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import yaml
from tqdm.auto import tqdm

from worldsim.data import policies, splits, workers
from worldsim.data.claims import Claims, NoClaims
from worldsim.data.schema import ARRAY_SPECS, SCHEMA_NAME, SCHEMA_VERSION
from worldsim.data.source import Source, params_json
from worldsim.data.store import chunk_frames, is_url, prepare, slot_frames
from worldsim.data.writer import BackgroundWriter, EpisodeWriter
from worldsim.errors import ConfigError, WorldsimError, text_position


@dataclass
class RecordConfig:
    """Everything a recording depends on. YAML files in configs/record/ hold these keys (others are errors)."""

    store: str = ""  # output store: a local folder, or an fsspec URL (s3://..., file://...: no claims there)
    scene: str = "bounce"  # a worldsim scene name or a gymnasium MuJoCo env id (e.g. Reacher-v5)
    episodes: int = 10  # episodes to have committed in [start, start + episodes) of the split
    start: int = 0  # first episode index: writers on several machines take disjoint ranges
    frames: int = 50  # frames per episode, the reset frame included
    resolution: int | list[int] = 64  # square side, or [height, width]
    frame_skip: int | None = None  # physics steps per frame (default: the scene's)
    camera: str | None = None  # the camera (default: the scene's first)
    reset_options: dict = field(default_factory=dict)  # extra env.reset options, e.g. a multi-shot camera schedule
    policy: str = "smooth"  # zero, uniform, smooth, scripted or callable (policies.py)
    policy_options: dict = field(default_factory=dict)  # e.g. {tau: 10} for smooth, {function: "pkg.mod:f"} for callable
    split: str = "train"  # train, val, test, ood, heldout, or any identifier with an explicit distribution
    distribution: str | None = None  # id, ood, ood:NAME or heldout (default: the split's)
    ranges: dict = field(default_factory=dict)  # explicit {quantity: [low, high]} overriding the distribution
    holdout: str | None = None  # a per-object quantity whose combinations with objects are held out (splits.py)
    seed: int = 0
    workers: int = 1  # rendering processes (one per core)
    break_claims: bool = False  # take over claims of processes this host cannot see (after checking they are gone)
    progress: bool = True

    def resolution_hw(self) -> tuple[int, int]:
        r = self.resolution
        return (r, r) if isinstance(r, int) else (int(r[0]), int(r[1]))

    def check(self) -> RecordConfig:
        """Raise ConfigError naming the field of the first bad value."""
        if not self.store:
            raise ConfigError("an output store path is required", field="store")
        for name in ("episodes", "frames", "workers"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
                raise ConfigError(f"must be a positive integer, got {v!r}", field=name)
        if self.frames < 2:
            raise ConfigError(f"an episode needs at least 2 frames, got {self.frames}", field="frames")
        if not (isinstance(self.start, int) and self.start >= 0):
            raise ConfigError(f"must be a non-negative integer, got {self.start!r}", field="start")
        if not (isinstance(self.seed, int) and 0 <= self.seed < 2**63):
            raise ConfigError(f"must be a non-negative integer, got {self.seed!r}", field="seed")
        if self.frame_skip is not None and not (isinstance(self.frame_skip, int) and self.frame_skip > 0):
            raise ConfigError(f"must be a positive integer, got {self.frame_skip!r}", field="frame_skip")
        r = self.resolution
        ok = (isinstance(r, int) and r > 0) or (isinstance(r, (list, tuple)) and len(r) == 2
                                                 and all(isinstance(x, int) and x > 0 for x in r))
        if not ok:
            raise ConfigError(f"expected a positive int or [height, width], got {r!r}", field="resolution")
        for name in ("reset_options", "policy_options", "ranges"):
            if not isinstance(getattr(self, name), dict):
                raise ConfigError(f"expected a mapping, got {getattr(self, name)!r}", field=name)
        splits.check_split_name(self.split)
        return self


def load_config(path: str | Path, overrides: dict | None = None) -> RecordConfig:
    """A RecordConfig from a YAML file (safe_load; unknown keys are errors), then `overrides` on top."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", source=path) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {' '.join(str(e).split())}", source=path,
                          field=text_position(e)) from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping of record settings", source=path)
    known = {f.name for f in fields(RecordConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown key; allowed keys: {sorted(known)}", source=path, field=unknown[0])
    return RecordConfig(**{**raw, **(overrides or {})})


@dataclass
class RecordResult:
    store: str
    split: str
    recorded: int  # episodes recorded by this run
    skipped: int  # episodes of the range already committed (resumed or appended runs)
    frames: int  # frames recorded by this run
    seconds: float  # wall time of the recording, worker start-up included
    startup_seconds: float = 0.0  # of which: until every worker had its env made (imports, GL context)
    cpu_seconds: float = 0.0  # CPU time of the recording after start-up, every thread and worker process summed

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


# --- one episode ------------------------------------------------------------------------------------------------


class EpisodeRecorder:
    """Records episodes of one split into their slots, in whichever process it lives (the parent or a worker).
    Writes go through a BackgroundWriter: `record(i)` returns once episode i is simulated and queued; its
    commit shows in `self.writer.committed()`."""

    def __init__(self, cfg: RecordConfig, policy, source: Source | None = None):
        self.cfg = cfg
        self.source = source or Source(cfg.scene, cfg.resolution_hw(), cfg.frame_skip, cfg.camera)
        self.policy = policy
        self.writer = BackgroundWriter(EpisodeWriter(cfg.store, cfg.split))
        w = self.writer.writer
        self.chunk, self.slot, self.state_names = w.chunk, w.slot, w.state_names
        self.distribution = splits.resolve_distribution(cfg.split, cfg.distribution)
        self.holdout = splits.check_holdout(self.source.scene, cfg.holdout)

    def record(self, index: int) -> int:
        """Simulate episode `index` of the split and queue its writes; return its number of frames."""
        cfg, src = self.cfg, self.source
        seeds = splits.episode_seeds(cfg.seed, cfg.split, index)
        options = dict(cfg.reset_options)
        if src.kind == "scene":
            params = splits.draw_params(src.scene, seeds.params, self.distribution, self.holdout, cfg.ranges)
            if params is None:
                options["distribution"] = self.distribution
            else:
                options["params"] = params
        rec = src.reset(seeds.env, options)
        episode_params = params_json(rec["params"])
        act = self.policy.episode(seeds.policy, src.env.action_space, cfg.scene)
        zero = np.zeros(src.env.action_space.shape, np.float32)
        h, w = src.info.resolution
        frames = np.empty((self.chunk, h, w, 3), np.uint8)  # the time chunk being filled (a new one per chunk:
        # the writer thread still holds the last)
        states: list[dict] = []
        # The caption is the env's last non-empty `info["caption"]` (its description of the episode so far);
        # caption events are its `info["caption_events"]` if it gives them, else every frame's `info["events"]`.
        caption, events, frame_events = rec["caption"], rec["caption_events"], list(rec["events"])
        for t in range(cfg.frames):
            if t > 0:
                rec = src.step(action)
                caption, events = rec["caption"] or caption, rec["caption_events"] or events
                frame_events += rec["events"]
            last = t == cfg.frames - 1 or rec["terminations"]
            action = zero if last else act(t, {**rec, "env": src.unwrapped})
            rec["actions"] = action
            frames[t % self.chunk] = rec.pop("frames")  # frames live in the chunk buffer only
            states.append(rec)
            if t % self.chunk == self.chunk - 1 or last:
                if last:
                    frames[t % self.chunk + 1:] = 0  # pad: whole chunks only, the same bytes on every run
                self.writer.write_frames(index, t - t % self.chunk, frames)
                frames = np.empty_like(frames)
            if last:
                break
        length = len(states)
        self.writer.commit(index, self._stack(states), length, seeds.env, episode_params, caption,
                           json.dumps(events or frame_events, default=_json_value))
        return length

    def _stack(self, records: list[dict]) -> dict[str, np.ndarray]:
        """Per-frame states stacked to (slot_frames, ...) arrays, zero past the episode's end."""
        out = {}
        for n in self.state_names:
            first = np.asarray(records[0][n])
            arr = np.zeros((self.slot, *first.shape), ARRAY_SPECS[n].dtype)
            arr[:len(records)] = np.stack([np.asarray(r[n]) for r in records])
            out[n] = arr
        return out

    def close(self) -> None:
        self.writer.close()
        self.source.close()


def _json_value(v):
    """numpy scalars and arrays inside env events, as JSON."""
    return v.tolist() if hasattr(v, "tolist") else str(v)


def _make_recorder(cfg: RecordConfig, policy) -> EpisodeRecorder:
    """Runs in each worker process: its own env (and GL context) and writer."""
    return EpisodeRecorder(cfg, policy)


# --- the run ----------------------------------------------------------------------------------------------------


def _root_attrs(cfg: RecordConfig, info, holdout: dict | None) -> dict:
    from worldsim import __version__

    h, w = info.resolution
    chunk = chunk_frames(cfg.frames, h, w)
    return {
        "schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "worldsim_version": __version__,
        "scene": info.scene, "source": info.source, "resolution": [h, w], "fps": info.fps,
        "frame_skip": info.frame_skip, "timestep": info.timestep, "frames_per_episode": cfg.frames,
        "chunk_frames": chunk, "slot_frames": slot_frames(cfg.frames, chunk), "cameras": list(info.cameras),
        "objects": list(info.objects), "nq": info.nq, "nv": info.nv, "nu": info.nu, "rewards": info.rewards,
        "action_low": list(info.action_low), "action_high": list(info.action_high), "seed": cfg.seed,
        "holdout": holdout, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def record(cfg: RecordConfig, policy=None) -> RecordResult:
    """Record episodes [start, start + episodes) of `cfg.split` into `cfg.store`; skip those already committed.

    `policy`: a policy object (policies.py) overriding `cfg.policy`, e.g. `policies.UserCallable(_fn=f)`; with
    several workers it must be picklable (a module-level function)."""
    cfg.check()
    path = cfg.store if is_url(cfg.store) else Path(cfg.store)
    if policy is None:
        policy = policies.make_policy(cfg.policy, cfg.policy_options)
    policy_attr = policies.describe(policy)
    distribution = splits.resolve_distribution(cfg.split, cfg.distribution)
    source = Source(cfg.scene, cfg.resolution_hw(), cfg.frame_skip, cfg.camera)
    recorder = None
    try:
        if source.kind == "gymnasium" and (distribution != "id" or cfg.ranges or cfg.holdout):
            raise ConfigError(f"{cfg.scene} is a gymnasium env: only the `id` distribution (its own reset) applies",
                              field="distribution")
        if distribution == "heldout" and cfg.holdout is None:
            raise ConfigError("the heldout split needs `holdout` (the quantity whose combinations are held out)",
                              field="holdout")
        holdout = splits.check_holdout(source.scene, cfg.holdout)
        cfg = replace(cfg, ranges=splits.check_ranges(source.scene, cfg.ranges))  # normalised; the caller's stays
        policy.episode(np.random.default_rng(0), source.env.action_space, cfg.scene)  # fail early on a bad policy
        split_attrs = {"split": cfg.split, "split_id": splits.split_id(cfg.split), "distribution": distribution,
                       "ranges": cfg.ranges, "policy": policy_attr, "reset_options": cfg.reset_options}
        # claims need atomic mkdir: on object storage writers take disjoint ranges instead (docs/data.md)
        claims = NoClaims() if is_url(path) else Claims(path, cfg.break_claims)
        prepare(path, _root_attrs(cfg, source.info, holdout), cfg.split, split_attrs, cfg.start + cfg.episodes, claims)
        if cfg.workers == 1:
            recorder = EpisodeRecorder(cfg, policy, source)
        writer = recorder.writer.writer if recorder else EpisodeWriter(path, cfg.split)
        wanted = range(cfg.start, cfg.start + cfg.episodes)
        todo = writer.uncommitted(wanted)
        try:
            for i in todo:
                claims.take(f"{cfg.split}.{i:09d}", f"episode {i} of split {cfg.split!r}")
            todo = sorted(set(todo) & set(writer.uncommitted(wanted)))  # a writer may have finished meanwhile
            if not is_url(path):  # ours now: remove what a killed writer of these episodes left half-renamed
                writer.remove_partials(todo)
            t0 = time.perf_counter()
            frames, startup, cpu = _run(cfg, policy, recorder, todo, claims)
            seconds = time.perf_counter() - t0
            claims.sweep(f"{cfg.split}.")  # stale claims of episodes committed by an interrupted run
        finally:
            claims.release_all()
    finally:
        (recorder.close() if recorder else source.close())
    return RecordResult(str(path), cfg.split, len(todo), len(wanted) - len(todo), frames, seconds,
                        startup - t0 if startup else 0.0, cpu)


def _run(cfg: RecordConfig, policy, recorder: EpisodeRecorder | None, todo: list[int],
         claims: Claims) -> tuple[int, float, float]:
    """Record `todo`; return the frames recorded, the perf_counter time at which every worker was ready, and the
    CPU seconds spent recording after that."""
    ready = time.perf_counter() if recorder is not None else 0.0
    cpu = time.process_time()
    bar = tqdm(total=len(todo) * cfg.frames, unit="frame", desc=f"record {cfg.scene} {cfg.split}",
               disable=not cfg.progress, smoothing=0.1)
    frames = 0

    def done(index: int, length: int) -> None:
        nonlocal frames
        frames += length
        bar.update(cfg.frames)
        claims.release(f"{cfg.split}.{index:09d}")

    try:
        if recorder is not None:
            for i in todo:
                recorder.record(i)
                for j, n in recorder.writer.committed():
                    done(j, n)
            recorder.writer.flush()
            for j, n in recorder.writer.committed():
                done(j, n)
            cpu = time.process_time() - cpu
        elif todo:
            def on_ready():
                nonlocal ready
                ready = time.perf_counter()

            cpu = workers.run(_make_recorder, (cfg, policy), todo, cfg.workers, done, on_ready)
        else:
            cpu = 0.0
    finally:
        bar.close()
    return frames, ready, cpu


# --- CLI --------------------------------------------------------------------------------------------------------


def _resolution(text: str) -> int | list[int]:
    try:
        if "x" in text:
            h, w = text.lower().split("x")
            return [int(h), int(w)]
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or HxW, got {text!r}") from None


def _range(text: str) -> tuple[str, list[float]]:
    name, _, rng = text.partition("=")
    try:
        lo, hi = (float(x) for x in rng.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=LOW,HIGH, got {text!r}") from None
    return name, [lo, hi]


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(value)


def add_arguments(p: argparse.ArgumentParser) -> None:
    s = argparse.SUPPRESS  # only the options given override the config file
    p.add_argument("store", nargs="?", default=s, help="output store: a folder (created if absent) or an fsspec URL")
    p.add_argument("--config", type=Path, help="a YAML file of record settings (configs/record/); options override it")
    p.add_argument("--scene", default=s, help="worldsim scene or gymnasium env id (default: bounce)")
    p.add_argument("--episodes", type=int, default=s, help="episodes in the range (default: 10)")
    p.add_argument("--start", type=int, default=s, help="first episode index (default: 0)")
    p.add_argument("--frames", type=int, default=s, help="frames per episode (default: 50)")
    p.add_argument("--resolution", type=_resolution, default=s, help="N or HxW in px (default: 64)")
    p.add_argument("--frame-skip", dest="frame_skip", type=int, default=s, help="physics steps per frame")
    p.add_argument("--camera", default=s, help="camera name (default: the scene's first)")
    p.add_argument("--reset-option", dest="reset_options", type=_option, action="append", default=s,
                   metavar="KEY=VALUE", help="an env.reset option, e.g. shots=random for multi-shot camera cuts")
    p.add_argument("--policy", default=s, choices=sorted(policies.POLICIES), help="action policy (default: smooth)")
    p.add_argument("--policy-option", dest="policy_options", type=_option, action="append", default=s,
                   metavar="KEY=VALUE", help="a policy option, e.g. tau=5 or function=mypkg.mod:act")
    p.add_argument("--split", default=s, help="train, val, test, ood, heldout or a name (default: train)")
    p.add_argument("--distribution", default=s, help="id, ood, ood:NAME or heldout (default: the split's)")
    p.add_argument("--range", dest="ranges", type=_range, action="append", default=s, metavar="NAME=LOW,HIGH",
                   help="an explicit range for a scene quantity (count: integers, e.g. count=1,1)")
    p.add_argument("--holdout", default=s, help="per-object quantity whose combinations are held out (e.g. radius)")
    p.add_argument("--seed", type=int, default=s)
    p.add_argument("--workers", type=int, default=s, help="rendering processes, one per core (default: 1)")
    p.add_argument("--break-claims", dest="break_claims", action="store_true", default=s,
                   help="take over claims held from other hosts (only once you know those writers are gone)")
    p.add_argument("--quiet", dest="progress", action="store_false", default=s, help="no progress bar")


def config_from_args(args: argparse.Namespace) -> RecordConfig:
    given = {k: v for k, v in vars(args).items() if k in {f.name for f in fields(RecordConfig)}}
    for key in ("policy_options", "ranges", "reset_options"):
        if key in given:
            given[key] = dict(given[key])
    return load_config(args.config, given) if args.config else RecordConfig(**given)


def main(args: argparse.Namespace) -> int:
    try:
        result = record(config_from_args(args))
    except WorldsimError as e:
        # An error about a setting names where that setting was given: the config file or the command line.
        if e.source is None:
            key = (e.field or "").lstrip("-").split(".")[0].split("[")[0].replace("-", "_")
            on_command_line = key in vars(args) or not args.config
            e.source = "command line" if on_command_line else str(args.config)
        raise
    print(f"{result.store} [{result.split}]: recorded {result.recorded} episodes ({result.frames} frames, "
          f"{result.fps:.0f} frames/s), {result.skipped} already committed")
    return 0


__all__ = ["RecordConfig", "RecordResult", "load_config", "record"]

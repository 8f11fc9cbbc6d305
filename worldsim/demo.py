"""`worldsim demo`: the README's main job in one command, on the built-in default scene.

    worldsim demo [--scene bounce] [--episodes 24] [--train MINUTES] [--out worldsim-demo] [--overwrite]

1. records a small test set of the scene into `OUT/data.zarr` (MuJoCo, the same recorder as `worldsim record`);
2. loads the shipped world model (`worldsim.pretrained`), or, with `--train MINUTES`, records a small train/val set
   into `OUT/train.zarr` and trains a fresh model under that wall-clock budget (`worldsim fit`, run in `OUT/run`);
3. rolls the model and the copy-last and linear baselines out beside MuJoCo on the recorded episodes and scores them
   (`worldsim.eval.evaluate`: paired rollouts, image and object metrics, Physics-IQ, physics probes);
4. writes `OUT/metrics.json` and `OUT/report.html` and prints the headline figures with their 95% intervals.

Everything runs offline on a CPU; the defaults take a few minutes on 2 cores (docs/getting-started.md)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import yaml

from worldsim.errors import ConfigError

DEFAULT_SCENE = "bounce"
BASELINES = ("copy-last", "linear")
# The headline: (summary key, label, unit, digits). Definitions in docs/metrics.md.
HEADLINE = (("psnr@1", "next-frame PSNR", "dB", 1), ("position_px_vs_mujoco", "centroid error", "px", 2),
            ("velocity_px_vs_mujoco", "velocity error", "px/frame", 2))
# `--train`'s data; its model is configs/train/bounce.yaml's, with more steps than the time budget reaches (time decides).
TRAIN_EPISODES, TRAIN_FRAMES, VAL_EPISODES = 96, 32, 8


@dataclass
class DemoResult:
    figures: dict  # metrics.json's content
    metrics: Path
    report: Path
    weights: Path
    lines: list[str]  # the headline, as printed


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scene", default=DEFAULT_SCENE, help="registered scene name (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=24, help="test episodes recorded and scored (default: %(default)s)")
    p.add_argument("--context", type=int, default=4, help="context frames given to each predictor (default: %(default)s)")
    p.add_argument("--horizon", type=int, default=16, help="frames rolled out and scored (default: %(default)s)")
    p.add_argument("--train", type=float, default=None, metavar="MINUTES",
                   help="record a small train set and train a fresh model for this many minutes first "
                        "(needed for scenes without shipped weights)")
    p.add_argument("--seed", type=int, default=0, help="recording and bootstrap seed (default: %(default)s)")
    p.add_argument("--out", type=Path, default=Path("worldsim-demo"), help="output folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out folder")


def _check(scene: str, episodes: int, context: int, horizon: int, train: float | None, out: Path,
           overwrite: bool) -> None:
    """Refuse bad inputs before any work (each a one-line ConfigError naming its option)."""
    from worldsim import pretrained
    from worldsim.sim.registry import get_scene

    spec = get_scene(scene).spec  # unknown scene: a ConfigError listing the registered ones
    for name, v in (("--episodes", episodes), ("--context", context), ("--horizon", horizon)):
        if v < 1:
            raise ConfigError(f"must be positive, got {v}", field=name)
    if context + horizon > spec.max_frames:
        raise ConfigError(f"--context {context} + --horizon {horizon} frames is longer than the episodes of {scene} "
                          f"({spec.max_frames} frames)", field="--horizon")
    if train is not None and not train > 0:
        raise ConfigError(f"must be a positive number of minutes, got {train}", field="--train")
    if train is None and scene not in pretrained.available():
        raise ConfigError(f"no shipped model for scene {scene!r} (shipped: {', '.join(pretrained.available())}); "
                          f"add --train MINUTES to train one first, e.g. `worldsim demo --scene {scene} --train 10`",
                          field="--scene")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError("folder is not empty; pass --overwrite or choose another --out", source=out, field="--out")


def train(scene: str, minutes: float, out: Path, resolution: int, seed: int = 0) -> Path:
    """Record a small train/val set of `scene` into `out/train.zarr`, train a fresh model on it for at most
    `minutes` of wall-clock time (`trainer.max_time`) in `out/run`, and return its exported weights."""
    from worldsim.data.recorder import RecordConfig, record
    from worldsim.training.cli import run as fit

    store = out / "train.zarr"
    for split, n in (("train", TRAIN_EPISODES), ("val", VAL_EPISODES)):
        record(RecordConfig(store=str(store), scene=scene, episodes=n, frames=TRAIN_FRAMES, resolution=resolution,
                            policy="smooth", split=split, seed=seed, workers=2))
    seconds = max(1, int(minutes * 60))
    config = {
        "seed_everything": seed,
        "trainer": {"default_root_dir": str(out / "run"), "accelerator": "cpu", "devices": 1,
                    "max_steps": max(50, int(seconds * 4)), "max_time": {"seconds": seconds},
                    "val_check_interval": 100, "log_every_n_steps": 25, "enable_checkpointing": True},
        "model": {"preset": "tiny", "lr": 0.001, "warmup_steps": 50, "val_levels": 4,
                  "overrides": {"width": 192, "depth": 4, "heads": 4, "history": 2,
                                "text": {"width": 64, "depth": 1, "heads": 2, "max_len": 128}},
                  "loss": {"p_context": 0.8, "edm": {"p_mean": 0.0, "p_std": 1.4, "sigma_max": 10.0}}},
        "data": {"stores": [str(store)], "windows": [8], "batch_size": 8, "val_batches": 2},
        "sample_every": 0,
    }
    cfg_path = out / "train.yaml"
    cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
    fit(["--config", str(cfg_path)])
    weights = out / "run" / "model.safetensors"
    if not weights.is_file():
        raise ConfigError("training ended without exporting weights", source=out / "run", field="--train")
    return weights


def headline(figures: dict, model: str) -> list[str]:
    """A few lines: the model beside copy-last and linear on each headline figure, with 95% intervals."""

    def f(est: dict, digits: int) -> str:
        if est is None or est.get("value") is None:
            return "n/a"
        lo, hi = est["ci95"]
        ci = "" if lo is None or hi is None else f" [{lo:.{digits}f}, {hi:.{digits}f}]"
        return f"{est['value']:.{digits}f}{ci}"

    names = [model, *[b for b in BASELINES if b in figures["scores"]]]
    rows = [[f"{name} ({unit})", *(f(figures["scores"][m]["summary"].get(key), digits) for m in names)]
            for key, name, unit, digits in HEADLINE]
    rows.append(["Physics-IQ score (0-100)", *(f(figures["scores"][m]["physics_iq"]["score"], 1) for m in names)])
    head = ["figure", "model", *names[1:]]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [f"{figures['scene']['name']}: {figures['episodes']['n']} test episodes, "
             f"{figures['config']['context']} context frames, {figures['config']['horizon']} predicted; "
             "mean [95% CI] (model = the world model; docs/metrics.md)"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    for m in names:
        missing = (figures["scores"][m]["summary"].get("missing") or {}).get("value")
        if missing is not None and missing > 0.5:
            who = "model" if m == model else m
            found = figures["scores"][m]["summary"]["position_px_vs_mujoco"]["value"] is not None
            lines.append(f"  {who}: its objects were not found in {100 * missing:.0f}% of its predicted frames "
                         + ("(its centroid and velocity errors are over the rest)" if found
                            else "(no centroid to compare: n/a)"))
    return lines


def run(scene: str = DEFAULT_SCENE, episodes: int = 24, context: int = 4, horizon: int = 16,
        train_minutes: float | None = None, seed: int = 0, out: Path = Path("worldsim-demo"),
        overwrite: bool = False, bootstrap: int | None = None) -> DemoResult:
    """The whole demo; returns the figures and where they were written."""
    from worldsim import pretrained
    from worldsim.data.recorder import RecordConfig, record
    from worldsim.eval.evaluate import EvalConfig, evaluate, write
    from worldsim.eval.world_model import WorldModelPredictor

    out = Path(out)
    _check(scene, episodes, context, horizon, train_minutes, out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    if train_minutes is None:
        weights = pretrained.path(scene)
        resolution = int(WorldModelPredictor.load(weights).resolution[0][0])
    else:
        resolution = 32
        weights = train(scene, train_minutes, out, resolution, seed)
    print(f"model: {weights}")
    store = out / "data.zarr"
    record(RecordConfig(store=str(store), scene=scene, episodes=episodes, frames=context + horizon,
                        resolution=resolution, policy="smooth", split="test", seed=seed, workers=2))
    extra = {} if bootstrap is None else {"bootstrap": bootstrap}
    cfg = EvalConfig(scene=scene, model=str(weights), episodes=episodes, context=context, horizon=horizon,
                     store=str(store), split="test", resolution=resolution, seed=seed, baselines=BASELINES,
                     batch_size=16, **extra)
    ev = evaluate(cfg, progress=True)
    js, html = write(ev, out, overwrite=True)
    return DemoResult(ev.figures, js, html, Path(weights), headline(ev.figures, ev.model))


def main(args: argparse.Namespace) -> int:
    res = run(args.scene, args.episodes, args.context, args.horizon, args.train, args.seed, args.out, args.overwrite)
    print("\n".join(res.lines))
    print(f"wrote {res.metrics.resolve()}\nreport: {res.report.resolve()}")
    return 0

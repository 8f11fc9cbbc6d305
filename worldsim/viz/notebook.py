"""What the notebooks share: the small-size switch and the world model a notebook works with.

`WORLDSIM_NOTEBOOK_SMALL=1` (the notebook tests set it) shrinks sizes and steps through `pick(full, small)`; it never
skips a cell, so CI runs every line a reader runs. `world_model(scene)` returns the shipped weights of a scene
(`worldsim.pretrained`) when there are some, else a tiny model trained here and now (`train_tiny`), and says which,
so a notebook's figures are never mistaken for the shipped model's. Tiny models are cached by (scene, size) in
`WORLDSIM_NOTEBOOK_CACHE` (default `~/.cache/worldsim/notebooks`): the second notebook that needs one reuses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

SMALL_ENV = "WORLDSIM_NOTEBOOK_SMALL"
CACHE_ENV = "WORLDSIM_NOTEBOOK_CACHE"


def small() -> bool:
    """True when `WORLDSIM_NOTEBOOK_SMALL` is set to anything but "", "0", "false" or "no"."""
    return os.environ.get(SMALL_ENV, "").strip().lower() not in ("", "0", "false", "no")


def pick(full, small_value):
    """`small_value` under the small-size switch, else `full`: every size in a notebook goes through this."""
    return small_value if small() else full


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "worldsim" / "notebooks")


@dataclass(frozen=True)
class TinyRun:
    """What `train_tiny` records and trains: sizes chosen so a full run takes minutes and a small one seconds."""

    scene: str
    episodes: int
    frames: int
    resolution: int
    steps: int
    preset: str
    preview: int  # a second, smaller resolution trained alongside (buckets), for low-resolution previews

    @classmethod
    def default(cls, scene: str) -> TinyRun:
        return cls(scene, episodes=pick(48, 3), frames=pick(24, 10), resolution=pick(32, 16), steps=pick(400, 8),
                   preset=pick("tiny", "debug"), preview=pick(16, 8))

    @property
    def name(self) -> str:
        return f"{self.scene}-{self.preset}-{self.resolution}+{self.preview}px-{self.episodes}ep-{self.steps}steps"


def fit_args(run: TinyRun, stores: list[Path], root: Path) -> list[str]:
    """`worldsim fit` arguments for a tiny run, every setting spelled out (no config file needed after install)."""
    every = max(1, run.steps // 4)
    return ["--seed_everything", "0", "--trainer.default_root_dir", str(root), "--trainer.accelerator", "cpu",
            "--trainer.devices", "1", "--trainer.max_steps", str(run.steps), "--trainer.val_check_interval",
            str(every), "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
            "--model.preset", run.preset, "--model.lr", "0.001", "--model.warmup_steps", str(min(20, run.steps // 4)),
            "--model.val_levels", "4", "--data.stores", "[" + ",".join(str(p) for p in stores) + "]", "--data.windows", "[4]",
            "--data.batch_size", "4", "--data.val_batches", "1", "--ema_decay", "0.9",
            "--checkpoint_every", str(run.steps), "--sample_every", str(every)]


def record_tiny(run: TinyRun, folder: Path) -> list[Path]:
    """Record the run's train and val splits (a few episodes of MuJoCo) at both resolutions: one store each."""
    from worldsim.data.recorder import RecordConfig, record

    stores = []
    for res in (run.resolution, run.preview):
        store = Path(folder) / f"data{res}.zarr"
        for split, n in (("train", run.episodes), ("val", max(1, run.episodes // 8))):
            record(RecordConfig(store=str(store), scene=run.scene, split=split, episodes=n, frames=run.frames,
                                resolution=res, progress=False))
        stores.append(store)
    return stores


def train_tiny(scene: str = "bounce", run: TinyRun | None = None, folder: Path | None = None,
               force: bool = False) -> Path:
    """Record and train a tiny model of `scene` with `worldsim fit`; returns the run folder (`model.safetensors`,
    `logs/version_0/metrics.csv`, `samples/`). Reuses a finished run in the cache unless `force`."""
    run = run or TinyRun.default(scene)
    if run.scene != scene:
        raise ValueError(f"the run is for {run.scene!r}, not {scene!r}")
    root = Path(folder) if folder is not None else cache_dir() / run.name
    weights = root / "model.safetensors"
    if weights.is_file() and not force:
        return root
    from worldsim.training import cli

    root.mkdir(parents=True, exist_ok=True)
    stores = record_tiny(run, root)
    with quiet():
        cli.run(fit_args(run, stores, root))
    return root


@contextlib.contextmanager
def quiet():
    """Lightning's banners (seed, accelerators, tips) and deprecation warnings hidden while a notebook trains:
    the notebook shows the loss curve and samples instead. Errors still raise."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "lightning")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def world_model(scene: str = "bounce"):
    """(WorldModel, where it came from): the shipped weights of `scene` if any, else a tiny model trained here."""
    import worldsim.pretrained as pretrained
    from worldsim.rollout import WorldModel

    if scene in pretrained.available():
        return pretrained.load(scene), f"shipped model worldsim/pretrained/{scene}.safetensors"
    root = train_tiny(scene)
    return WorldModel.load(root / "model.safetensors"), (
        f"no shipped {scene} model: a tiny model trained here ({root.name}) - expect blurry guesses")


def samples(root: str | Path) -> dict[int, "np.ndarray"]:
    """The sample videos a run wrote (`samples/step_NNNNNN.gif`: real | sampled) as step -> (T, H, W, 3) uint8."""
    import imageio.v3 as iio
    import numpy as np

    out = {}
    for p in sorted(Path(root).glob("samples/step_*.gif")):
        frames = np.asarray(iio.imread(p, index=None))
        out[int(p.stem.split("_")[1])] = frames[..., :3].astype(np.uint8)
    return out

"""`worldsim bench train`: training steps through the real LightningModule and data module (`worldsim fit`'s
path minus the CLI), on a small store recorded into a temp folder: steps/s, tokens/s, MFU against a plain matmul's
FLOP/s measured in the same run, and the process's peak RSS.

Unlike `bench model` (a bare optimiser step on random tensors) this includes the data loader, the conditioning
(actions, cameras, captions through the text encoder), Lightning's loop and logging: what a real run pays."""

from __future__ import annotations

import logging
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch

from worldsim.bench.model import matmul_flops
from worldsim.bench.report import BenchReport

# (preset, batch, window, resolution): CPU sizes keep the whole bench well under a minute.
RUNS = [("debug", 4, 4, 16), ("tiny", 4, 8, 32)]
FRAMES, EPISODES = 12, 6


class Timer(L.Callback):
    """Records each training batch's wall time, from batch start to the optimiser step's end (data loading sits
    between one batch's end and the next one's start, so it is excluded)."""

    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.times.append(time.perf_counter() - self._t)


def _record(folder: Path, resolution: int) -> str:
    from worldsim.data.recorder import RecordConfig, record

    store = folder / f"bounce{resolution}.zarr"
    for split, n in (("train", EPISODES), ("val", 2)):
        record(RecordConfig(store=str(store), scene="bounce", episodes=n, frames=FRAMES, resolution=resolution,
                            policy="smooth", split=split, workers=1, progress=False))
    return str(store)


def timer_times(timer: Timer) -> list[float]:
    """The step times after the first (which pays one-off costs: allocation, lazy init)."""
    return timer.times[1:] if len(timer.times) > 1 else timer.times


def run(quick: bool = False) -> BenchReport:
    from worldsim.training.data import WorldDataModule
    from worldsim.training.module import WorldModel
    from worldsim.models import flops

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no "GPU available" banners in the table
    report = BenchReport("train")
    load_before = os.getloadavg()[0]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    steps = 3 if quick else 6
    with tempfile.TemporaryDirectory(prefix="worldsim-bench-train-") as tmp:
        for preset, batch, window, res in RUNS:
            store = _record(Path(tmp), res)
            timer = Timer()
            torch.manual_seed(0)
            dm = WorldDataModule(stores=[store], windows=[window], batch_size=batch, max_steps=steps, val_batches=1)
            module = WorldModel(preset=preset, scene=dm.describe(), max_steps=steps, warmup_steps=1)
            trainer = L.Trainer(accelerator="auto", devices=1, max_steps=steps, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                limit_val_batches=0, num_sanity_val_steps=0, use_distributed_sampler=False,
                                callbacks=[timer])
            trainer.fit(module, datamodule=dm)
            times = timer_times(timer)
            step = statistics.median(times)
            peak = matmul_flops(device, torch.float32 if device.type == "cpu" else torch.bfloat16, seconds=0.3)
            size = (window, res, res)
            f = flops.count(module.net, batch, size)
            pt, ph, pw = module.net.cfg.patch
            tokens = batch * (window // pt) * (res // ph) * (res // pw)
            tag = f"{preset} {res}px B{batch}xT{window}"
            report.add(f"{tag} steps/s", 1 / step, "steps/s")
            report.add(f"{tag} training tokens/s", tokens / step, "tokens/s")
            report.add(f"{tag} model FLOP/s", f.train / step / 1e9, "GFLOP/s", "fp32 matmul, same run", peak / 1e9)
            report.add(f"{tag} MFU", 100 * f.train / step / peak, "%")
            del module, trainer, dm
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    report.add("peak RSS of the process", rss, "MiB")
    report.notes.append(f"{steps} Lightning steps per run, median after the first; step = data batch to optimiser "
                        "step incl. conditioning (text encoder); FLOPs analytic without the text encoder; "
                        f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on "
                        f"{os.cpu_count()} cores")
    return report

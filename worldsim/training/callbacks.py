"""Side work of a training run, kept out of the LightningModule: EMA of weights, a stop on non-finite loss,
throughput/MFU logging, sample videos through the samplers, and atomic checkpoint writes."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from worldsim.errors import WorldsimError


class EMA(L.Callback):
    """Exponential moving average of the module's parameters (Karras et al. 2024 use EMA for every sample).

    The average is kept on the module as `ema_state` (a buffer-free dict, saved in checkpoints through
    `on_save_checkpoint`), swapped in for validation, and is what `export` writes."""

    def __init__(self, decay: float = 0.999, start_step: int = 0):
        if not 0.0 <= decay < 1.0:
            raise WorldsimError(f"must be in [0, 1), got {decay}", field="ema.decay")
        self.decay, self.start_step = decay, start_step
        self.shadow: dict[str, torch.Tensor] | None = None
        self._backup: dict[str, torch.Tensor] | None = None

    def _params(self, pl_module) -> dict[str, torch.Tensor]:
        return {k: p for k, p in pl_module.named_parameters() if p.requires_grad}

    def on_fit_start(self, trainer, pl_module) -> None:
        if self.shadow is None:
            self.shadow = {k: p.detach().clone() for k, p in self._params(pl_module).items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        # Warm-up of the decay (as in many EMA implementations): early weights change fast, so average less.
        decay = 0.0 if step <= self.start_step else min(self.decay, (1 + step) / (10 + step))
        for k, p in self._params(pl_module).items():
            self.shadow[k].lerp_(p.detach(), 1.0 - decay)

    def swap(self, pl_module) -> None:
        """Exchange the live and averaged weights (call twice to restore)."""
        params = self._params(pl_module)
        with torch.no_grad():
            for k, p in params.items():
                tmp = p.detach().clone()
                p.copy_(self.shadow[k])
                self.shadow[k] = tmp

    def on_validation_start(self, trainer, pl_module) -> None:
        if self.shadow is not None:
            self.swap(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.shadow is not None:
            self.swap(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "shadow": self.shadow}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.shadow = state["shadow"]


class StopOnNonFinite(L.Callback):
    """A NaN or inf loss stops the run with a clear message; the last good checkpoint is left as it was."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss).all():
            raise WorldsimError(f"loss became {loss.item()} at step {trainer.global_step}; stopping. The last good "
                                "checkpoint is untouched: lower the learning rate and resume from it",
                                field="loss")


class Throughput(L.Callback):
    """Logs steps/s, tokens/s and model FLOPs utilisation against a matmul FLOP/s measured at the start."""

    def __init__(self, peak_flops: float | None = None, log_every: int = 10):
        self.peak_flops, self.log_every = peak_flops, log_every
        self._t = None

    def on_train_start(self, trainer, pl_module) -> None:
        if self.peak_flops is None:
            from worldsim.training.flops import matmul_flops

            self.peak_flops = matmul_flops()
        self._t, self._step = time.perf_counter(), trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        steps = trainer.global_step - self._step
        if steps < self.log_every:
            return
        dt = time.perf_counter() - self._t
        video = batch["video"]
        tokens = pl_module.tokens_per_clip(video.shape[1:]) * video.shape[0]
        flops = pl_module.train_flops(video.shape[1:]) * video.shape[0]
        pl_module.log_dict({"perf/steps_per_s": steps / dt, "perf/tokens_per_s": tokens * steps / dt,
                            "perf/mfu": flops * steps / dt / self.peak_flops}, on_step=True, on_epoch=False)
        self._t, self._step = time.perf_counter(), trainer.global_step


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoint writes that a kill cannot half-finish: write a temporary file, fsync it, rename it over the
    target. A reader (or `--ckpt_path last`) sees either the previous checkpoint or the new one, never a torn one."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        fs = get_filesystem(path)
        if fs.protocol not in ("file", ("file", "local")) and "file" not in getattr(fs, "protocol", ()):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict:
        # Even a run's own checkpoint is read with weights_only=True: the module keeps its hyperparameters as plain
        # dicts, so nothing in a checkpoint needs arbitrary unpickling. Shared weights go through safetensors.
        return torch.load(path, map_location=map_location or "cpu", weights_only=True)

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
            from worldsim.bench.model import matmul_flops

            bf16 = "bf16" in str(trainer.precision)
            self.peak_flops = matmul_flops(pl_module.device, torch.bfloat16 if bf16 else torch.float32)
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
                            "perf/mfu": flops * steps / dt / self.peak_flops,
                            "perf/peak_rss_gib": _peak_rss_gib()}, on_step=True, on_epoch=False)
        self._t, self._step = time.perf_counter(), trainer.global_step


def _peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


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


class SampleVideos(L.Callback):
    """Every `every` steps, continues the first `clips` validation clips from their first `context` frames with the
    EMA weights and the Euler sampler (`steps` levels), and writes `samples/step_NNNNNN.gif`: real | sampled.

    Runs outside `validation_step`, through the same stateless samplers rollouts use."""

    def __init__(self, every: int = 500, clips: int = 2, context: int = 2, steps: int = 8, fps: float = 10.0):
        self.every, self.clips, self.context, self.steps, self.fps = every, clips, context, steps, fps
        self.written: list[Path] = []

    @torch.no_grad()
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if self.every <= 0 or step % self.every or trainer.global_rank != 0 or trainer.datamodule is None:
            return
        from worldsim.diffusion import plans
        from worldsim.diffusion.sampling import sample_euler
        from worldsim.viz.video import write_video

        val = next(iter(trainer.datamodule.val_dataloader()))
        video = val["video"][: self.clips].to(pl_module.device)                        # (B, T, C, H, W)
        T = video.shape[1]
        if T <= self.context:
            return
        ema = next((c for c in trainer.callbacks if isinstance(c, EMA) and c.shadow is not None), None)
        was_training = pl_module.training
        pl_module.eval()
        if ema is not None:
            ema.swap(pl_module)
        try:
            plan = plans.extend(self.steps, T, self.context, "forward", pl_module.loss_cfg.edm)
            known = torch.zeros_like(video)
            known[:, : self.context] = video[:, : self.context]
            x = plans.initial(known, plan, torch.Generator().manual_seed(step))
            cond = pl_module.cond({k: (v[: self.clips] if hasattr(v, "__getitem__") else v) for k, v in val.items()})
            out = sample_euler(pl_module.denoiser, x, plan, cond)
        finally:
            if ema is not None:
                ema.swap(pl_module)
            pl_module.train(was_training)
        to_u8 = lambda v: ((v.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 0, 3, 4, 2)  # noqa: E731
        real, fake = to_u8(video.cpu()), to_u8(out.cpu())                              # (T, B, H, W, C)
        grid = torch.cat([torch.cat([real[:, b], fake[:, b]], dim=2) for b in range(real.shape[1])], dim=1)
        path = Path(trainer.default_root_dir) / "samples" / f"step_{step:06d}.gif"
        self.written.append(write_video(path, grid.numpy(), self.fps))

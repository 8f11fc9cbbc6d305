"""`worldsim fit`: LightningCLI over `WorldModel` and `WorldDataModule`, configured by YAML in `configs/train/`.

Values shared by data and model are linked, never typed twice: the model's `scene` (resolution, frame skip,
cameras, action size, conditioned parameters) comes from the data's stores, and `trainer.max_steps` sets the
data's and the schedule's length. Each run folder holds the resolved config, CSV and TensorBoard logs,
checkpoints (`checkpoints/last.ckpt`, written atomically) and the exported weights (`model.safetensors`)."""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

import lightning as L

from worldsim.training.callbacks import EMA, AtomicCheckpointIO, SampleVideos, StopOnNonFinite, Throughput
from worldsim.training.data import WorldDataModule
from worldsim.training.export import export
from worldsim.training.module import WorldModel




class ExportOnFitEnd(L.Callback):
    """Writes `<run>/model.safetensors` (EMA weights when the EMA callback is used) when fitting ends."""

    def on_fit_end(self, trainer, pl_module) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if trainer.global_rank != 0:
            return
        ema = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
        config = Path(log_dir or trainer.default_root_dir) / "config.yaml"
        export(pl_module, Path(trainer.default_root_dir) / "model.safetensors",
               ema=None if ema is None or ema.shadow is None else ema.shadow,
               config=config.read_text() if config.is_file() else None,
               data=trainer.datamodule.stores if trainer.datamodule is not None else None, steps=trainer.global_step)


class FitCLI(LightningCLI):
    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data", "model.scene", compute_fn=lambda data: data.describe(), apply_on="instantiate")
        parser.link_arguments("trainer.max_steps", "data.max_steps")
        parser.link_arguments("trainer.max_steps", "model.max_steps")
        parser.add_argument("--ema_decay", type=float, default=0.999, help="EMA decay of the exported weights")
        parser.add_argument("--checkpoint_every", type=int, default=100, help="steps between `last` checkpoints")
        parser.add_argument("--sample_every", type=int, default=500, help="steps between sample videos (0: never)")

    def before_instantiate_classes(self) -> None:
        cfg = self.config[self.subcommand] if self.subcommand else self.config
        root = cfg.trainer.default_root_dir or "runs/default"
        cfg.trainer.default_root_dir = root
        if cfg.trainer.max_steps is None or cfg.trainer.max_steps < 1:
            cfg.trainer.max_steps = 1000

    def _instantiate_trainer(self, config, callbacks):
        """The run folder's loggers, atomic checkpoints and worldsim's callbacks, whatever the YAML says."""
        cfg = self.config[self.subcommand]
        root = config["default_root_dir"]
        # Each (re)start logs into a new logs/version_N (CSV and TensorBoard side by side), so a resumed run keeps the
        # earlier curves.
        logs = Path(root) / "logs"
        taken = [int(p.name.split("_")[1]) for p in logs.glob("version_*") if p.name.split("_")[1].isdigit()]
        version = max(taken, default=-1) + 1
        config["logger"] = [CSVLogger(root, name="logs", version=version),
                            TensorBoardLogger(root, name="logs", version=version)]
        config["plugins"] = [AtomicCheckpointIO()]
        callbacks = [*callbacks, EMA(decay=cfg.ema_decay), StopOnNonFinite(), ExportOnFitEnd(),
                     SampleVideos(every=cfg.sample_every), Throughput(log_every=cfg.trainer.log_every_n_steps or 10),
                     ModelCheckpoint(dirpath=Path(root) / "checkpoints", save_last=True, save_top_k=1,
                                     monitor="val/loss", filename="best", every_n_train_steps=cfg.checkpoint_every)]
        return super()._instantiate_trainer(config, callbacks)


def run(argv: list[str]) -> int:
    # LightningCLI parses sys.argv, and DDP re-launches `sys.argv` in each child process: make it `worldsim fit ...`
    sys.argv = [sys.argv[0], "fit", *argv]
    FitCLI(WorldModel, WorldDataModule, save_config_kwargs={"overwrite": True},
           trainer_defaults={"use_distributed_sampler": False, "max_steps": 1000, "log_every_n_steps": 10, "check_val_every_n_epoch": None,
                             "val_check_interval": 100, "enable_model_summary": False}, auto_configure_optimizers=False)
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

"""`worldsim fit`: LightningCLI over `WorldModel` and `WorldDataModule`, configured by YAML in `configs/train/`.

Values shared by data and model are linked, never typed twice: the model's `scene` (resolution, frame skip,
cameras, action size, conditioned parameters) comes from the data's stores, and `trainer.max_steps` sets the
data's and the schedule's length. Each run folder holds the resolved config, CSV and TensorBoard logs,
checkpoints (`checkpoints/last.ckpt`, written atomically) and the exported weights (`model.safetensors`)."""

from __future__ import annotations

import re
import sys
from pathlib import Path, PurePath

import torch
import yaml

from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

import lightning as L

from worldsim.errors import ConfigError
from worldsim.training.callbacks import EMA, AtomicCheckpointIO, SampleVideos, StopOnNonFinite, Throughput
from worldsim.training.data import WorldDataModule
from worldsim.training.export import export
from worldsim.training.module import WorldModel



# Keys of callbacks/profilers whose value is a folder the run writes into: they must lie inside the run folder.
OUTPUT_PATH_KEYS = ("dirpath", "save_dir", "log_dir")


def _given_in(key: str, argv: list[str]) -> str:
    """Where a dotted config key was set: "command line", else the last `--config` file holding it."""
    if any(a == f"--{key}" or a.startswith(f"--{key}=") for a in argv):
        return "command line"
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--config"]
    files += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for path in reversed(files):
        try:
            node = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            return path
    return "command line"


def check_run_paths(trainer_cfg: dict, argv: list[str]) -> None:
    """The run folder contract (docs/training.md): everything a run writes lies inside `trainer.default_root_dir`.
    The folder itself may be absolute or relative but has no `..` component (a config someone shares cannot reach
    into the folders above yours), and a callback's or profiler's output folder must resolve inside it."""
    root = str(trainer_cfg.get("default_root_dir") or "")
    if ".." in PurePath(root).parts:
        raise ConfigError(f"the run folder {root!r} has a '..' component; give a path without '..' (absolute paths "
                          "are fine)", source=_given_in("trainer.default_root_dir", argv),
                          field="trainer.default_root_dir")
    base = Path(root).resolve()

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in OUTPUT_PATH_KEYS and isinstance(v, (str, PurePath)):
                    target = (base / v).resolve() if not Path(v).is_absolute() else Path(v).resolve()
                    if target != base and base not in target.parents:
                        raise ConfigError(f"{str(v)!r} is outside the run folder {root!r}: every output of a run "
                                          "lies inside it", source=_given_in("trainer", argv), field=f"{where}.{k}")
                else:
                    walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk({k: v for k, v in trainer_cfg.items() if k != "default_root_dir"}, "trainer")


def _parse_error(message: str, argv: list[str]) -> ConfigError:
    """jsonargparse's error (usage and a multi-line message) as one ConfigError naming the file and the key."""
    text = " ".join(str(message).split())
    m = re.search(r"(?:option|[Kk]ey) ['\"]([\w.\[\]-]+)['\"]", text)
    key = m.group(1) if m else None
    if key:
        for prefix in ("fit.",):
            key = key.removeprefix(prefix)
    return ConfigError(f"{'unknown key' if 'not accept' in text or 'not expected' in text else 'invalid value'}: "
                       f"{text} (see `worldsim fit --help`)", source=_given_in(key, argv) if key else "command line",
                       field=key or "arguments")


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


def checkpoints_dir(root) -> Path:
    """Where a run folder's checkpoints live (`last.ckpt`, `best.ckpt`): written by the trainer, read on resume."""
    return Path(root) / "checkpoints"


# Model arguments filled by links (from the data and the trainer), not by the user: never compared on resume.
LINKED_MODEL_KEYS = {"scene", "max_steps"}


def check_resume(ckpt_path, root: str, model_cfg: dict, argv: list[str]) -> None:
    """A resumed run keeps its checkpoint's model: a config whose model settings differ from the checkpoint's is an
    error naming the first field that differs. (LightningCLI would replace them with the checkpoint's, silently,
    and only for an explicit path, not for `last`.)"""
    if not ckpt_path:
        return
    path = checkpoints_dir(root) / "last.ckpt" if ckpt_path == "last" else Path(ckpt_path)
    if not path.is_file():
        return  # `last` before the first checkpoint starts from scratch; a missing path is Lightning's error
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu").get("hyper_parameters") or {}
    except Exception as e:  # truncated, not a checkpoint, or holding objects a safe load refuses
        raise ConfigError(f"cannot read the checkpoint to resume from: {type(e).__name__}: {str(e)[:200]}",
                          source=str(path), field="ckpt_path") from None
    for key in sorted((set(saved) & set(model_cfg)) - LINKED_MODEL_KEYS):
        if saved[key] != model_cfg[key]:
            raise ConfigError(f"the checkpoint {path} was trained with model.{key} = {saved[key]!r}, the config says "
                              f"{model_cfg[key]!r}; a resumed run keeps its checkpoint's model settings: set them "
                              "back, or start a new run folder (--trainer.default_root_dir)",
                              source=_given_in(f"model.{key}", argv), field=f"model.{key}")


class FitCLI(LightningCLI):
    def _parse_ckpt_path(self) -> None:
        """Resuming never rewrites the config from the checkpoint: `before_instantiate_classes` checks they agree."""

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
        check_run_paths(_plain(cfg.trainer), sys.argv[2:])
        check_resume(cfg.get("ckpt_path"), root, _plain(cfg.model), sys.argv[2:])
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
                     ModelCheckpoint(dirpath=checkpoints_dir(root), save_last=True, save_top_k=1,
                                     monitor="val/loss", filename="best", every_n_train_steps=cfg.checkpoint_every)]
        return super()._instantiate_trainer(config, callbacks)


def _plain(node):
    """A jsonargparse Namespace (nested) as plain dicts and lists."""
    if hasattr(node, "as_dict"):
        node = node.as_dict()
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


# Arguments typed as free mappings (dict[str, ...]): jsonargparse sets `--model.loss.p_context 0.5` inside the
# config's mapping, but a key two levels in (`--model.loss.edm.p_mean 1.0`) replaces the inner mapping with that one
# key, its value a string: edm's other settings would be dropped without a word.
MAPPINGS = ("model.overrides", "model.loss", "data.shares")


def check_deep_overrides(argv: list[str]) -> None:
    """Refuse a command-line key two or more levels inside a free mapping, naming the whole-mapping form to use."""
    for arg in argv:
        key = arg[2:].split("=", 1)[0] if arg.startswith("--") else ""
        for mapping in MAPPINGS:
            inner = key.removeprefix(mapping + ".")
            if inner != key and "." in inner:
                parent = key.rsplit(".", 1)[0]
                raise ConfigError(f"--{key} would replace the whole mapping {parent} with this one key (the others "
                                  f"lost); give the mapping whole, e.g. --{parent} '{{{key.rsplit('.', 1)[1]}: ..., "
                                  "...}'", source="command line", field=key)


def run(argv: list[str]) -> int:
    check_deep_overrides(argv)
    # LightningCLI parses sys.argv, and DDP re-launches `sys.argv` in each child process: make it `worldsim fit ...`
    sys.argv = [sys.argv[0], "fit", *argv]
    from jsonargparse import ArgumentError

    try:
        _fit()
    except ArgumentError as e:  # parse errors raise (exit_on_error=False) so that they print as one line
        raise _parse_error(str(e), argv) from None
    return 0


def _fit() -> None:
    no_exit = {"exit_on_error": False}
    FitCLI(WorldModel, WorldDataModule, save_config_kwargs={"overwrite": True},
           parser_kwargs={**no_exit, "fit": no_exit},
           trainer_defaults={"use_distributed_sampler": False, "max_steps": 1000, "log_every_n_steps": 10, "check_val_every_n_epoch": None,
                             "val_check_interval": 100, "enable_model_summary": False}, auto_configure_optimizers=False)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))

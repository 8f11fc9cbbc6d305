"""What the scaling notebook shows about the real training configs: a side-by-side table of the settings that
change between a laptop and a cluster, the global batch each implies, the launch commands for many GPUs and many
machines, and the fully resolved config exactly as `worldsim fit --print_config` prints it (run in a child
process, so nothing is trained and the notebook's own process keeps no Lightning state)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

KEYS = ("trainer.accelerator", "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.precision",
        "trainer.max_steps", "model.preset", "data.batch_size", "data.windows", "data.num_workers")


def load(path: str | Path) -> dict:
    """A training config file as a dict."""
    return yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}


def get(cfg: dict, dotted: str, default=None):
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def global_batch(cfg: dict, gpus_per_node: int = 8) -> int:
    """batch_size x devices x num_nodes (`data.batch_size` is per process; devices -1 means every GPU of a node,
    counted as `gpus_per_node`)."""
    devices = get(cfg, "trainer.devices", 1)
    devices = gpus_per_node if devices in (-1, "auto", None) else int(devices)
    return int(get(cfg, "data.batch_size", 1)) * devices * int(get(cfg, "trainer.num_nodes", 1) or 1)


def compare(configs: dict[str, dict], gpus_per_node: int = 8) -> tuple[list[str], list[list]]:
    """(header, rows): one row per setting in `KEYS` plus the global batch, one column per config."""
    names = list(configs)
    rows = [[k, *(get(configs[n], k, "–") for n in names)] for k in KEYS]
    rows.append([f"global batch ({gpus_per_node} GPUs/node for devices -1)",
                 *(global_batch(configs[n], gpus_per_node) for n in names)])
    return ["setting", *names], rows


def launch_commands(config: str, nodes: int = 2, gpus_per_node: int = 8) -> dict[str, str]:
    """The same `worldsim fit` on one GPU, one node of many GPUs, and many nodes (torchrun and SLURM)."""
    fit = f"worldsim fit --config {config}"
    return {
        "one machine, every GPU (DDP)": fit,
        "one machine, FSDP": f"{fit} --trainer.strategy fsdp",
        "torchrun, per node": (f"torchrun --nnodes {nodes} --nproc-per-node {gpus_per_node} --node-rank $RANK "
                               f"--master-addr $MASTER_ADDR --master-port 29500 $(which worldsim) fit --config {config} "
                               f"--trainer.num_nodes {nodes} --trainer.devices {gpus_per_node}"),
        "SLURM (sbatch)": (f"#!/bin/bash\n#SBATCH --nodes={nodes} --ntasks-per-node={gpus_per_node} "
                           f"--gpus-per-node={gpus_per_node} --cpus-per-task=8\n"
                           f"srun {fit} --trainer.num_nodes {nodes} --trainer.devices {gpus_per_node}"),
        "resume after preemption": f"{fit} --ckpt_path last",
    }


def resolved(args: list[str], timeout: float = 300) -> str:
    """`worldsim fit ARGS --print_config` run in a child process: the config LightningCLI would train with (every
    default filled in), or the one-line error it refuses it with (raised as RuntimeError)."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, "-m", "worldsim.cli", "fit", *args, "--print_config"], capture_output=True,
                       text=True, timeout=timeout, env=env)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1] if (r.stderr or r.stdout) else
                           f"exit {r.returncode}")
    return r.stdout


def config_dir(start: str | Path | None = None) -> Path:
    """The repository's `configs/train` folder, looked for in `start` (default: the working directory) and the
    folders above it (a notebook runs in `notebooks/`). The configs are repository files, not package data."""
    here = Path(start or Path.cwd()).resolve()
    for p in (here, *here.parents):
        if (p / "configs" / "train").is_dir():
            return p / "configs" / "train"
    raise FileNotFoundError(f"no configs/train in {here} or above it: run from a worldsim checkout")

"""`worldsim bench [NAME ...] [--json] [--quick]`: run benchmarks (all but `long` when none is named) and print one
table, each figure beside its reference measured in the same run; with `--json`, print one JSON object."""

from __future__ import annotations

import argparse
import importlib
import json

from worldsim.bench.report import combined_table, machine
from worldsim.errors import ConfigError

# name -> module with `run(quick: bool) -> BenchReport`
BENCHMARKS: dict[str, str] = {
    "scenes": "worldsim.bench.scenes",
    "record": "worldsim.bench.record",
    "model": "worldsim.bench.model",
    "train": "worldsim.bench.train",
    "rollout": "worldsim.bench.rollout",
    "long": "worldsim.bench.long",  # minutes long: run only when named
}
DEFAULT = [n for n in BENCHMARKS if n != "long"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", metavar="NAME",
                   help=f"benchmarks to run (default: all but long): {', '.join(BENCHMARKS)}")
    p.add_argument("--json", action="store_true", help="print one JSON object of the figures instead of tables")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (for smoke tests; figures are noisier)")


def main(args: argparse.Namespace) -> int:
    names = args.names or DEFAULT
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ConfigError(f"unknown benchmark {unknown[0]!r}; known: {', '.join(BENCHMARKS)}", field="NAME")
    reports = [importlib.import_module(BENCHMARKS[n]).run(quick=args.quick) for n in names]
    if args.json:
        out = {"machine": machine(), "benchmarks": {r.name: r.to_json() for r in reports}}
        if len(reports) == 1:
            out = reports[0].to_json()
        print(json.dumps(out))
    else:
        print(reports[0].table() if len(reports) == 1 else combined_table(reports))
    return 0

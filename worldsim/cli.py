"""The `worldsim` command. Each subcommand lives in the module named after what it does; this file only
parses the first word, imports that module lazily (so `worldsim --help` stays fast), and turns a
`WorldsimError` into one clear line and a non-zero exit (a traceback only with `--debug`)."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import traceback

from worldsim.errors import ConfigError, WorldsimError

# name -> (module, one-line help). Each module has `add_arguments(parser)` and `main(args) -> int | None`.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("worldsim.demo", "the main job: record a test set, roll out the shipped model beside MuJoCo, write the report"),
    "fit": ("worldsim.training.cli", "train a world model with LightningCLI (YAML in configs/train/)"),
    "bench": ("worldsim.bench.cli", "run the benchmarks (all, or by name) and print each figure beside its reference"),
    "scenes": ("worldsim.sim.cli", "list the registered scenes, or describe one"),
    "export": ("worldsim.training.export_cli", "export a run's checkpoint (EMA weights) to safetensors for rollouts and sharing"),
    "evaluate": ("worldsim.eval.evaluate", "score a model and the baselines against MuJoCo; write metrics.json and report.html"),
    "record": ("worldsim.data.recorder", "record simulation episodes into a zarr v3 store (docs/data.md)"),
    "inspect": ("worldsim.data.inspect", "summarise a recorded store; export an episode to mp4/gif and a contact sheet"),
    "rollout": ("worldsim.rollout.rollout_cli", "roll a world model out from MuJoCo or a store; write video and frames"),
    "plan": ("worldsim.rollout.plan_cli", "plan push actions by imagining in a world model (or MuJoCo), execute in MuJoCo"),
    "generate": ("worldsim.rollout.generate_cli", "generate video in any mode (t2v, i2v, extend, loop, connect, edit, preview)"),
}


PASSTHROUGH = {"fit"}  # commands whose arguments go untouched to their own parser


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is a `ConfigError` naming it (one line, like every other input error) instead
    of argparse's usage block; `--help` is unchanged."""

    def error(self, message: str):
        m = re.match(r"argument ([^:]+): (.*)", message, re.S)
        if m:
            field, message = m.group(1).split("/")[-1], m.group(2)
        else:
            m = re.search(r"(?:required|unrecognized arguments): (\S+)", message)
            field = m.group(1).rstrip(",") if m else "arguments"
        raise ConfigError(f"{' '.join(message.split())} (see `{self.prog} --help`)", source="command line",
                          field=field)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (each imports torch, MuJoCo, ... : seconds apiece)."""
    parser = Parser(prog="worldsim", description="worldsim: a video diffusion transformer as a learned "
                                     "physics simulator, checked against MuJoCo.")
    parser.add_argument("--debug", action="store_true", help="print full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        if name in PASSTHROUGH or name != command:  # listed for --help without importing its module
            p = sub.add_parser(name, help=help_, add_help=False)
        else:
            p = sub.add_parser(name, help=help_, description=help_)
            p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="print full tracebacks on errors")
            importlib.import_module(module).add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        rest = [a for a in argv if a != "--debug"]
        if rest and rest[0] in PASSTHROUGH:  # e.g. `worldsim fit --config ...`: LightningCLI parses the rest
            return int(importlib.import_module(COMMANDS[rest[0]][0]).run(rest[1:]) or 0)
        args = build_parser(rest[0] if rest else None).parse_args(argv)
        return int(importlib.import_module(args._module).main(args) or 0)
    except WorldsimError as e:
        if debug:
            traceback.print_exc()
        print(f"worldsim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("worldsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

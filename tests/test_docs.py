"""The docs are executable: every ```bash block in README.md and docs/*.md runs here, in a temp folder, at small
sizes (`small()` rewrites episode counts, frames, resolutions and horizons), unless an HTML comment right before it
says `<!-- not run: REASON -->`. Those blocks are checked as far as possible without running them: every `worldsim`
command in them must parse (its subcommand's argparse parser), and every `worldsim fit` resolves its config with
`--print_config`. `docs/cli.md` is generated from the parsers; a test fails when it is stale (regenerate with
`WORLDSIM_REGEN_DOCS=1 .venv/bin/pytest tests/test_docs.py -k cli_reference`)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
CLI_DOC = ROOT / "docs" / "cli.md"
BLOCK = re.compile(r"(?:<!--\s*not run:\s*(?P<reason>.*?)\s*-->\s*\n)?```bash\n(?P<body>.*?)```", re.S)
# Small sizes for the blocks that run: (option, value) rewritten wherever the option appears.
SMALL = {"--episodes": "2", "--frames": "8", "--resolution": "16", "--horizon": "4", "--voe": "1",
         "--adherence": "1"}


def blocks() -> list[tuple[str, int, str, str | None]]:
    """(doc name, block number, body, not-run reason or None) for every ```bash block."""
    out = []
    for doc in DOCS:
        for i, m in enumerate(BLOCK.finditer(doc.read_text())):
            out.append((doc.relative_to(ROOT).as_posix(), i, m.group("body"), m.group("reason")))
    return out


def commands(body: str) -> list[str]:
    """The block's shell lines, continuations joined, comments and blank lines dropped."""
    text = body.replace("\\\n", " ")
    lines = [re.sub(r"(^|\s)#\s.*$", "", line).strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def small(line: str) -> str:
    """`line` at test size: SMALL's options rewritten; `worldsim demo` given few episodes and a short horizon."""
    for opt, value in SMALL.items():
        line = re.sub(rf"{opt}(\s+|=)\S+", f"{opt} {value}", line)
    if re.search(r"\bworldsim record\b.*--config", line):  # the config's sizes would not match the small store
        for opt in ("--frames", "--resolution"):
            if opt not in line:
                line += f" {opt} {SMALL[opt]}"
    if re.search(r"\bworldsim demo\b", line):
        line = line.replace("--resolution 16", "")
        for opt, value in (("--episodes", "2"), ("--horizon", "4")):
            if opt not in line:
                line += f" {opt} {value}"
    return line


RUN = [b for b in blocks() if b[3] is None]
NOT_RUN = [b for b in blocks() if b[3] is not None]


def _env(tmp: Path) -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONUNBUFFERED": "1", "HOME": str(tmp)}


@pytest.mark.parametrize("doc,i,body,reason", RUN, ids=[f"{b[0]}#{b[1]}" for b in RUN])
def test_doc_block_runs(doc, i, body, reason, tmp_path):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    for line in commands(body):
        cmd = small(line)
        res = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=tmp_path, env=_env(tmp_path),
                             capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{doc} block {i}: `{cmd}` failed:\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"


def worldsim_argv(line: str) -> list[str] | None:
    """The arguments after `worldsim` in a shell line (also inside `srun` / `$(which worldsim)`), or None."""
    m = re.search(r"(?:^|\s|\))worldsim\s+(.*)$", line)
    if not m:
        return None
    argv = shlex.split(m.group(1).replace("$RANK", "0").replace("$MASTER_ADDR", "localhost"))
    return [a.replace("[...]", "[data/x.zarr]") for a in argv]


def test_not_run_blocks_have_reasons_and_parse(tmp_path):
    """Every block that is not run says why, and its `worldsim` commands parse; each `fit` config resolves."""
    from worldsim.cli import COMMANDS, build_parser

    assert NOT_RUN, "expected the GPU/cluster/long blocks to be marked"
    fits = {}
    for doc, i, body, reason in NOT_RUN:
        assert len(reason) > 8, f"{doc} block {i}: give a reason after `not run:`"
        for line in commands(body):
            argv = worldsim_argv(line)
            if argv is None:
                continue
            assert argv[0] in COMMANDS, f"{doc}: unknown command in `{line}`"
            if argv[0] == "fit":
                cfg = argv[argv.index("--config") + 1]
                fits.setdefault(cfg, [a for a in argv[1:] if a not in ("--print_config",)])
                continue
            with contextlib.redirect_stdout(io.StringIO()):
                build_parser(argv[0]).parse_args(argv)  # a ConfigError names a stale option
    exe = Path(sys.executable).with_name("worldsim")
    for cfg, argv in fits.items():  # one --print_config per config file (each starts Lightning: seconds)
        if "--ckpt_path" in argv:
            k = argv.index("--ckpt_path")
            argv = argv[:k] + argv[k + 2:]
        res = subprocess.run([str(exe), "fit", *argv, "--print_config"], cwd=ROOT, capture_output=True, text=True,
                             timeout=300, env=_env(tmp_path))
        assert res.returncode == 0 and "trainer:" in res.stdout, f"{cfg}: {res.stderr[-2000:]}"


def test_not_run_list_is_complete():
    """docs/getting-started.md lists every block that is not run, with its reason (one place to look)."""
    text = (ROOT / "docs" / "getting-started.md").read_text()
    section = text.split("## Commands the tests do not run", 1)[1]
    for doc, i, body, reason in NOT_RUN:
        assert f"`{doc}`" in section and reason in section, f"list {doc} block {i} ({reason}) in getting-started.md"


# --- docs/cli.md -----------------------------------------------------------------------------------------------

def cli_reference() -> str:
    """Every command in COMMANDS with its options (argparse's help at 100 columns) and the configs in configs/."""
    from worldsim.cli import COMMANDS, PASSTHROUGH, build_parser

    os.environ["COLUMNS"] = "100"
    parts = ["# Command reference\n",
             "Generated from the argparse parsers by `tests/test_docs.py` (which fails when this file is stale; "
             "regenerate with `WORLDSIM_REGEN_DOCS=1 .venv/bin/pytest tests/test_docs.py -k cli_reference`). "
             "Every command prints one line and exits 2 on a bad input (docs/errors.md); `--debug` adds the "
             "traceback.\n"]
    parts.append("| command | what it does |\n|---|---|\n" + "".join(
        f"| [`worldsim {n}`](#worldsim-{n}) | {h} |\n" for n, (_, h) in COMMANDS.items()))
    for name, (_, help_) in COMMANDS.items():
        parts.append(f"## worldsim {name}\n\n{help_}.\n")
        if name in PASSTHROUGH:
            parts.append("LightningCLI parses the arguments: `worldsim fit --help` lists every option of the trainer, "
                         "the model (`--model.*`) and the data (`--data.*`); any config key can be given on the "
                         "command line (`--trainer.max_steps 100`); `--print_config` prints the resolved config "
                         "without training. See docs/training.md and the configs below.\n")
            continue
        parser = build_parser(name)
        sub = next(a for a in parser._actions if a.dest == "command").choices[name]
        sub.prog = f"worldsim {name}"
        parts.append("```text\n" + sub.format_help().rstrip() + "\n```\n")
    parts.append("## Configs\n\nYAML files in `configs/`: `record/` for `worldsim record --config`, `train/` for "
                 "`worldsim fit --config`. Each file's opening comment:\n")
    for cfg in sorted((ROOT / "configs").glob("*/*.yaml")):
        head = [line[1:].strip() for line in cfg.read_text().splitlines() if line.startswith("#")][:1]
        parts.append(f"- `{cfg.relative_to(ROOT).as_posix()}`: {' '.join(head) or '(no comment)'}")
    return "\n".join(parts).rstrip() + "\n"


def test_cli_reference_is_current():
    want = cli_reference()
    if os.environ.get("WORLDSIM_REGEN_DOCS") == "1":
        CLI_DOC.write_text(want)
    assert CLI_DOC.is_file() and CLI_DOC.read_text() == want, (
        "docs/cli.md is stale; regenerate with WORLDSIM_REGEN_DOCS=1 .venv/bin/pytest tests/test_docs.py -k cli_reference")


def test_readme_links_every_doc():
    readme = (ROOT / "README.md").read_text()
    for doc in sorted((ROOT / "docs").glob("*.md")):
        assert f"(docs/{doc.name})" in readme, f"README.md does not link docs/{doc.name}"
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:  # and every relative link resolves
        for target in re.findall(r"\]\(((?!https?:|#)[^)\s]+)\)", doc.read_text()):
            assert (doc.parent / target.split("#")[0]).exists(), f"{doc.name}: broken link {target}"


def test_noise_plan_pictures(tmp_path):
    """`worldsim.viz.plans` draws every mode of `worldsim.diffusion.plans`; docs/img holds each picture, and
    docs/concepts.md shows them."""
    from worldsim.diffusion.plans import MODES
    from worldsim.viz.plans import save_all

    written = save_all(tmp_path)
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in written)
    concepts = (ROOT / "docs" / "concepts.md").read_text()
    for p in written:
        assert (ROOT / "docs" / "img" / p.name).is_file(), f"docs/img/{p.name} missing: run save_all('docs/img')"
        assert f"img/{p.name}" in concepts
    assert {p.stem.removeprefix("plan_").split("_")[0] for p in written} >= set(MODES)

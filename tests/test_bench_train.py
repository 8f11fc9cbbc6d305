"""`worldsim bench train` (real LightningModule steps on a temp store) and the combined one-table output of
`worldsim bench` with several benchmarks."""

from __future__ import annotations

from worldsim.bench import train
from worldsim.bench.cli import BENCHMARKS, DEFAULT
from worldsim.bench.report import BenchReport, combined_table


def test_train_bench_measures_real_steps(monkeypatch):
    monkeypatch.setattr(train, "RUNS", [("debug", 2, 4, 16)])  # one small run: seconds
    report = train.run(quick=True)
    rows = {r.figure: r for r in report.rows}
    assert rows["debug 16px B2xT4 steps/s"].value > 0
    assert rows["debug 16px B2xT4 training tokens/s"].value > 0
    flop = rows["debug 16px B2xT4 model FLOP/s"]
    assert flop.reference_value > 1 and 0 < flop.ratio < 1  # the matmul reference, measured in the same run
    assert 0 < rows["debug 16px B2xT4 MFU"].value < 100
    assert rows["peak RSS of the process"].value > 50 and report.notes


def test_every_default_benchmark_is_registered():
    assert DEFAULT == ["scenes", "record", "model", "train", "rollout"]
    assert BENCHMARKS["train"] == "worldsim.bench.train"


def test_combined_table_has_one_header_and_a_section_column():
    a, b = BenchReport("scenes", notes=["n1"]), BenchReport("train")
    a.add("bounce frames/s", 120.0, "frames/s", "bare MuJoCo", 240.0)
    a.add("push frames/s", 80.0, "frames/s", "bare MuJoCo", 160.0)
    b.add("debug steps/s", 3.0, "steps/s")
    lines = combined_table([a, b]).splitlines()
    assert lines[0].split() == ["section", "figure", "value", "unit", "reference", "ref", "value", "ratio"]
    assert sum(line.startswith("section") for line in lines) == 1
    assert lines[2].startswith("scenes ") and lines[3].startswith(" ") and lines[4].startswith("train ")
    assert "0.50" in lines[2] and lines[-1] == "note (scenes): n1"

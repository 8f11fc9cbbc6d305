"""A benchmark's result: rows of (figure, value, unit) each beside its reference, printable as a table or JSON."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field


def machine() -> dict:
    """What the figures were measured on."""
    import torch

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


@dataclass
class Row:
    figure: str
    value: float
    unit: str
    reference: str = ""
    reference_value: float | None = None

    @property
    def ratio(self) -> float | None:
        if self.reference_value in (None, 0):
            return None
        return self.value / self.reference_value


@dataclass
class BenchReport:
    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, figure: str, value: float, unit: str, reference: str = "", reference_value: float | None = None) -> Row:
        row = Row(figure, float(value), unit, reference, None if reference_value is None else float(reference_value))
        self.rows.append(row)
        return row

    def to_json(self) -> dict:
        return {
            "bench": self.name,
            "machine": machine(),
            "figures": {r.figure: r.value for r in self.rows},
            "rows": [{"figure": r.figure, "value": r.value, "unit": r.unit, "reference": r.reference,
                      "reference_value": r.reference_value, "ratio": r.ratio} for r in self.rows],
            "notes": self.notes,
        }

    def table(self) -> str:
        head = ("figure", "value", "unit", "reference", "ref value", "ratio")
        body = [(r.figure, f"{r.value:.4g}", r.unit, r.reference,
                 "" if r.reference_value is None else f"{r.reference_value:.4g}",
                 "" if r.ratio is None else f"{r.ratio:.2f}") for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
        fmt = "  ".join(f"{{:{'<' if i in (0, 2, 3) else '>'}{w}}}" for i, w in enumerate(widths))
        lines = [f"== bench {self.name} ==", fmt.format(*head), fmt.format(*("-" * w for w in widths))]
        lines += [fmt.format(*b) for b in body] + [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def dumps(self) -> str:
        return json.dumps(self.to_json())


def combined_table(reports: list[BenchReport]) -> str:
    """Several benchmarks as one table: one header, the benchmark's name in a section column, then the notes."""
    head = ("section", "figure", "value", "unit", "reference", "ref value", "ratio")
    body = [(rep.name, r.figure, f"{r.value:.4g}", r.unit, r.reference,
             "" if r.reference_value is None else f"{r.reference_value:.4g}",
             "" if r.ratio is None else f"{r.ratio:.2f}") for rep in reports for r in rep.rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 1, 3, 4) else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), fmt.format(*("-" * w for w in widths))]
    for i, b in enumerate(body):
        lines.append(fmt.format(*(("",) + b[1:] if i and body[i - 1][0] == b[0] else b)))
    lines += [f"note ({rep.name}): {n}" for rep in reports for n in rep.notes]
    return "\n".join(lines)

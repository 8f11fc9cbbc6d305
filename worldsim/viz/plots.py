"""Matplotlib figures the notebooks show: training curves, per-step metric curves, object trajectories, noise plans,
bar charts with intervals, and frame strips. Each function returns a `Figure` (or an image array) built only from
its arguments, so a test can read the plotted data back (`ax.lines[i].get_xydata()`) and compare it with the input.
Figures are built without pyplot (no global state, no display needed); `show(fig)` puts one in a notebook as PNG."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from worldsim.eval.parse import parse


def read_metrics(path: str | Path) -> dict[str, np.ndarray]:
    """A Lightning `metrics.csv` (or a run folder: its latest `logs/version_*/metrics.csv`) as column -> array of
    (step, value) rows where the value is present."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("logs/version_*/metrics.csv"), key=lambda p: int(p.parent.name.split("_")[1]))
        if not found:
            raise FileNotFoundError(f"no logs/version_*/metrics.csv under {path}")
        path = found[-1]
    rows = list(csv.DictReader(path.read_text().splitlines()))
    out: dict[str, list] = {}
    for r in rows:
        step = float(r["step"])
        for k, v in r.items():
            if k not in ("step", "epoch") and v not in ("", None):
                out.setdefault(k, []).append((step, float(v)))
    return {k: np.array(v) for k, v in out.items()}


def loss_curve(metrics: Mapping[str, np.ndarray] | str | Path, keys=("train/loss", "val/loss")) -> Figure:
    """Training and validation loss against step (one line per key present, in `keys` order)."""
    data = read_metrics(metrics) if isinstance(metrics, (str, Path)) else metrics
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    for k in keys:
        if k in data:
            ax.plot(data[k][:, 0], data[k][:, 1], marker="o" if k.startswith("val") else None, label=k)
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="denoising loss")
    ax.legend()
    fig.tight_layout()
    return fig


def curves(per_step: Mapping[str, np.ndarray], ylabel: str, title: str = "", xlabel: str = "step") -> Figure:
    """One line per name: y[t] against t = 1..len(y) (a per-step metric: PSNR, position error...)."""
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    for name, y in per_step.items():
        y = np.asarray(y, np.float64)
        ax.plot(np.arange(1, len(y) + 1), y, label=name)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tracks(frames: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) frames -> (T, N, 2) pixel centres (u, v) of each object colour (NaN where not seen): the
    evaluation's colour parser, so a trajectory plot shows what the metrics measure."""
    return parse(np.asarray(frames)[None], np.asarray(colours)).centre[0]


def trajectories(paths: Mapping[str, np.ndarray], size: tuple[int, int] | None = None, title: str = "",
                 colours: np.ndarray | None = None) -> Figure:
    """Object paths in image coordinates: `paths[name]` is (T, N, 2) or (T, 2) pixel centres; one line per
    (name, object), a line style per name, v pointing down as in the image. `size` (H, W) fixes the axes to the
    frame; `colours` (N, 3) 0-255 draws each object in its own colour."""
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.add_subplot()
    styles = ["-", "--", ":", "-."]
    for i, (name, p) in enumerate(paths.items()):
        p = np.asarray(p, np.float64)
        p = p[:, None] if p.ndim == 2 else p
        for n in range(p.shape[1]):
            if np.isfinite(p[:, n]).any():
                colour = None if colours is None else np.asarray(colours[n], np.float64) / 255
                ax.plot(p[:, n, 0], p[:, n, 1], styles[i % len(styles)], marker=".", label=f"{name} #{n}",
                        color=colour)
    if size is not None:
        ax.set_xlim(0, size[1])
        ax.set_ylim(size[0], 0)
    else:
        ax.invert_yaxis()
    ax.set(xlabel="u (px)", ylabel="v (px)", title=title, aspect="equal")
    ax.legend(fontsize=7, loc="best", framealpha=0.6)
    fig.tight_layout()
    return fig


def noise_plan(plan, title: str = "") -> Figure:
    """A `(steps + 1, frames)` noise plan as a heat map: rows are sampler steps, columns frames, colour log sigma."""
    p = np.asarray(plan.detach().cpu() if hasattr(plan, "detach") else plan, np.float64)
    fig = Figure(figsize=(5, 2.6))
    ax = fig.add_subplot()
    im = ax.imshow(np.log10(np.maximum(p, 1e-3)), aspect="auto", cmap="magma", interpolation="nearest")
    ax.set(xlabel="frame", ylabel="sampler step", title=title)
    fig.colorbar(im, ax=ax, label="log10 sigma (0 = clean)")
    fig.tight_layout()
    return fig


def bars(values: Mapping[str, float], errors: Mapping[str, tuple[float, float]] | None = None, ylabel: str = "",
         title: str = "", reference: float | None = None) -> Figure:
    """A bar per name; `errors[name]` = (low, high) draws the interval; `reference` a dashed line (chance)."""
    names = list(values)
    y = np.array([values[n] for n in names], np.float64)
    fig = Figure(figsize=(max(3.5, 1.1 * len(names)), 3))
    ax = fig.add_subplot()
    yerr = None
    if errors:
        lo = np.array([y[i] - errors[n][0] for i, n in enumerate(names)])
        hi = np.array([errors[n][1] - y[i] for i, n in enumerate(names)])
        yerr = np.stack([lo, hi])
    ax.bar(names, y, yerr=yerr, capsize=4, color="#4c72b0")
    if reference is not None:
        ax.axhline(reference, ls="--", color="grey")
    ax.set(ylabel=ylabel, title=title)
    fig.tight_layout()
    return fig


def strip(frames: np.ndarray, every: int = 1, gap: int = 1) -> np.ndarray:
    """(T, H, W, 3) -> one (H, n*W + gaps, 3) image of every `every`-th frame, white gaps: a clip at a glance.
    Rows of several clips: `np.concatenate([strip(a), strip(b)], 0)` with equal shapes."""
    f = np.asarray(frames, np.uint8)[::every]
    pad = np.full((f.shape[1], gap, 3), 255, np.uint8)
    parts = []
    for i, x in enumerate(f):
        parts += [x] if i == 0 else [pad, x]
    return np.concatenate(parts, axis=1)


def image(array: np.ndarray, min_size: int = 128):
    """An (H, W, 3) uint8 array as an IPython image (nearest-neighbour upscaled so small frames are visible)."""
    from IPython.display import Image

    from worldsim.viz.widgets import png_bytes

    return Image(data=png_bytes(np.asarray(array, np.uint8), min_size))


def png(fig: Figure, dpi: int = 100) -> bytes:
    """A figure as PNG bytes (drawn by Agg, whatever backend is active)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def show(fig: Figure) -> None:
    """Display a figure in a notebook (as a PNG image: no pyplot, no inline-backend state)."""
    from IPython.display import Image, display

    display(Image(data=png(fig)))


def clip_rows(clips: Mapping[str, np.ndarray], every: int = 1, title: str = "") -> Figure:
    """Clips of equal frame size as labelled rows of frames (`strip`), one row per name: a generated clip beside
    its ground truth. Clips may differ in length; shorter rows end early."""
    names = list(clips)
    strips = [strip(clips[n], every) for n in names]
    width = max(s.shape[1] for s in strips)
    fig = Figure(figsize=(min(14, 1.0 + width / 12), 0.35 + 0.9 * len(names)))
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    for ax, name, s in zip(axes, names, strips):
        ax.imshow(s, interpolation="nearest")
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def estimates(node, prefix: str = "") -> dict[str, dict]:
    """Every bootstrap estimate ({"value", "ci95", ...}) in a nested result (evaluation figures, VoE accuracy) by
    its dotted path: a flat view of a report for a table."""
    out: dict[str, dict] = {}
    if isinstance(node, Mapping):
        if "value" in node and "ci95" in node:
            return {prefix: dict(node)}
        for k, v in node.items():
            out.update(estimates(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def table(rows: list[list], header: list[str]) -> str:
    """An HTML table (escaped) for `IPython.display.HTML`."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def fmt(est: dict | None) -> str:
    """A bootstrap estimate as "value [low, high]" (3 significant digits); "–" when missing or not finite."""
    if not est or est.get("value") is None or not np.isfinite(est["value"]):
        return "–"
    lo, hi = est.get("ci95") or (None, None)
    ci = f" [{lo:.3g}, {hi:.3g}]" if lo is not None and hi is not None else ""
    return f"{est['value']:.3g}{ci}"


def score_table(figures: Mapping, keys=("psnr", "ssim", "position_px_vs_mujoco", "missing")) -> str:
    """The evaluation's summary (`worldsim.eval.evaluate(...).figures`) as an HTML table: one row per predictor
    (the model and the baselines), value and 95% interval per metric."""
    rows = [[name, *(fmt(s["summary"].get(k)) for k in keys)] for name, s in figures["scores"].items()]
    return table(rows, ["predictor", *keys])


def per_step(figures: Mapping, key: str = "psnr") -> dict[str, np.ndarray]:
    """Per-step curves of one metric for every predictor of an evaluation (`figures["scores"]`): name -> (H,)."""
    out = {}
    for name, s in figures["scores"].items():
        entry = s["per_step"].get(key)
        if entry is not None:
            out[name] = np.asarray(entry["value"] if isinstance(entry, Mapping) else entry, np.float64)
    return out

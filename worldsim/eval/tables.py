"""Markdown tables of `metrics.json` files, for docs/results.md (baselines now, models in issue 9).

    python -m worldsim.eval.tables runs/eval/*/metrics.json

One row per (scene, distribution, predictor): the headline figures with their 95% intervals."""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = [  # (header, where in a predictor's scores, key)
    ("next-frame PSNR (dB)", "summary", "psnr@1"),
    ("PSNR (dB)", "summary", "psnr"),
    ("SSIM", "summary", "ssim"),
    ("centre err. (px)", "summary", "position_px_vs_mujoco"),
    ("centre err. @H (px)", "last_step", "position_px_vs_mujoco"),
    ("velocity err. (px/frame)", "summary", "velocity_px_vs_state"),
    ("Physics-IQ (%)", "physics_iq", "score"),
]


def _cell(est: dict | None) -> str:
    if not est or est.get("value") is None:
        return "–"
    v, lo, hi = (0.0 if x is not None and abs(x) < 1e-6 else x for x in (est["value"], *est["ci95"]))
    digits = 3 if abs(v) < 10 else 1
    fmt = f"{{:.{digits}f}}" if abs(v) >= 0.01 or v == 0 else "{:.2g}"
    if lo is None or hi is None:
        return fmt.format(v)
    return f"{fmt.format(v)} [{fmt.format(lo)}, {fmt.format(hi)}]"


def _last(est: dict) -> dict:
    vals, lo, hi = est["value"], est["ci95"][0], est["ci95"][1]
    return {"value": vals[-1], "ci95": [lo[-1], hi[-1]]}


def rows(figures: dict) -> list[list[str]]:
    cfg = figures["config"]
    out = []
    for name, s in figures["scores"].items():
        cells = []
        for _, where, key in COLUMNS:
            if where == "last_step":
                cells.append(_cell(_last(s["per_step"][key])))
            else:
                cells.append(_cell(s[where].get(key)))
        floor = _cell(figures["floor"]["summary"].get("velocity_px_floor"))
        out.append([_scene(cfg), cfg["distribution"], name, *cells, floor])
    return out


def _scene(cfg: dict) -> str:
    extra = [f"start {cfg['start']}" if cfg.get("start") else "",
             f"{cfg['policy']} actions" if cfg.get("policy", "random") != "random" else ""]
    extra = [e for e in extra if e]
    return cfg["scene"] + (f" ({', '.join(extra)})" if extra else "")


PROBE_LABELS = {
    "gravity_ratio": "gravity fitted ÷ true", "restitution": "wall restitution",
    "collision_momentum_change": "collision momentum change", "collision_energy_change": "collision energy change",
    "reemergence_rate": "re-emergence rate", "error_after_reemergence_px": "error after re-emergence (px)",
    "colour_kept": "colour kept", "count_conserved": "object count conserved",
    "spontaneous_appearance": "spontaneous appearances",
}


def probes_markdown(paths: list[str | Path]) -> str:
    """One row per (scene, probe): MuJoCo's state, the parser floor, then every predictor."""
    lines = []
    for p in paths:
        fig = json.loads(Path(p).read_text())
        names = list(fig["scores"])
        probes = fig["scores"][names[0]].get("probes", {})
        if not probes:
            continue
        if not lines:
            head = ["scene", "probe", "MuJoCo state", "parser on MuJoCo", *names, "episodes"]
            lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for probe, ref in probes.items():
            cells = [_cell(fig["scores"][n]["probes"].get(probe, {}).get("model")) for n in names]
            lines.append("| " + " | ".join([_scene(fig["config"]), PROBE_LABELS.get(probe, probe),
                                            _cell(ref.get("state")) if "state" in ref else "–",
                                            _cell(ref.get("mujoco")) if "mujoco" in ref else "–", *cells,
                                            str((ref.get("state") or ref["model"])["episodes_with_events"])]) + " |")
    return "\n".join(lines)


def markdown(paths: list[str | Path]) -> str:
    head = ["scene", "dist.", "predictor", *[c[0] for c in COLUMNS], "velocity floor (px/frame)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in paths:
        for r in rows(json.loads(Path(p).read_text())):
            lines.append("| " + " | ".join(r) + " |")
    return "\n".join(lines)


def generalisation_markdown(paths: list[str | Path]) -> str:
    """Kang et al.'s generalisation table: each predictor's velocity error (vs state) per distribution, and each
    distribution's ratio to the first one's (their out-of-distribution ÷ in-distribution ≈ 35×)."""
    figs = [json.loads(Path(p).read_text()) for p in paths]
    dists = [f["config"]["distribution"] for f in figs]
    head = ["predictor", *[f"velocity err. {d} (px/frame)" for d in dists], *[f"{d} ÷ {dists[0]}" for d in dists[1:]]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in figs[0]["scores"]:
        ests = [f["scores"][name]["summary"]["velocity_px_vs_state"] for f in figs]
        base = ests[0]["value"]
        ratios = [f"{e['value'] / base:.2f}" if base and e["value"] is not None else "–" for e in ests[1:]]
        lines.append("| " + " | ".join([name, *[_cell(e) for e in ests], *ratios]) + " |")
    floors = [_cell(f["floor"]["summary"]["velocity_px_floor"]) for f in figs]
    lines.append("| " + " | ".join(["parser floor", *floors, *["" for _ in dists[1:]]]) + " |")
    return "\n".join(lines)


GENERALISATION_ROWS = [(label, where, key) for label, where, key in COLUMNS] + [
    ("position err. vs state (px)", "summary", "position_px_vs_state"),
    ("velocity err. (m/s)", "summary", "velocity_mps_vs_state"),
    ("lost objects (fraction)", "summary", "missing"),
]


def _get(scores: dict, where: str, key: str) -> dict | None:
    if where == "last_step":
        return _last(scores["per_step"][key]) if key in scores["per_step"] else None
    return scores.get(where, {}).get(key)


def generalisation_all_markdown(paths: list[str | Path]) -> str:
    """Every headline metric per distribution for every predictor, with each distribution's ratio to the first
    (issue 8: "in-distribution vs out-of-distribution vs held-out combinations for every metric")."""
    figs = [json.loads(Path(p).read_text()) for p in paths]
    dists = [f["config"]["distribution"] for f in figs]
    head = ["predictor", "metric", *dists, *[f"{d} ÷ {dists[0]}" for d in dists[1:]]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in figs[0]["scores"]:
        for label, where, key in GENERALISATION_ROWS:
            ests = [_get(f["scores"][name], where, key) for f in figs]
            if all(e is None for e in ests):
                continue
            base = ests[0]["value"] if ests[0] else None
            ratios = [f"{e['value'] / base:.2f}" if base and e and e["value"] is not None else "–" for e in ests[1:]]
            lines.append("| " + " | ".join([name, label, *[_cell(e) for e in ests], *ratios]) + " |")
        for probe, d in probe_sets(figs[0]).items():
            key = next(k for k in d["scores"][name] if k.endswith("pass_rate")) if name in d["scores"] else None
            if key is None:
                continue
            ests = [probe_sets(f).get(probe, {}).get("scores", {}).get(name, {}).get(key) for f in figs]
            base = ests[0]["value"] if ests[0] else None
            ratios = [f"{e['value'] / base:.2f}" if base and e and e["value"] is not None else "–" for e in ests[1:]]
            lines.append("| " + " | ".join([name, key.replace("_", " "), *[_cell(e) for e in ests], *ratios]) + " |")
    return "\n".join(lines)


def probe_sets(fig: dict) -> dict:
    """The consistency probes and the action-response probe of one metrics.json: {probe: {"scores": ...}}."""
    return {**fig.get("consistency", {}), **({"response": fig["response"]} if fig.get("response") else {})}


CONSISTENCY_FIGURES = [("pass rate", "pass_rate"), ("error (px)", "error_px"), ("drift (px)", "drift_px"),
                       ("lost", "missing")]


def consistency_markdown(paths: list[str | Path]) -> str:
    """One row per (scene, probe, predictor) of the consistency and action-response probes: pass rate, error and
    lost fraction."""
    head = ["scene", "probe", "predictor", "pass rate", "error (px)", "lost", "episodes checked"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in paths:
        fig = json.loads(Path(p).read_text())
        for probe, d in probe_sets(fig).items():
            for name, v in d["scores"].items():
                rate = next((v[k] for k in v if k.endswith("pass_rate")), None)
                err = next((v[k] for k in v if (k.endswith("error_px") or k.endswith("drift_px"))), None)
                lost = next((v[k] for k in v if k.endswith("missing")), None)
                lines.append("| " + " | ".join([_scene(fig["config"]), probe, name, _cell(rate), _cell(err),
                                                _cell(lost), f"{d['checked']} / {d['episodes']}"]) + " |")
    return "\n".join(lines)


MODE_FIGURES = [("pass rate", "pass_rate"), ("error (px)", "error_px"), ("lost", "missing"),
                ("seam step", "seam_step"), ("seams passed", "seam_pass"), ("largest step", "max_step"),
                ("objects shown", "objects_shown")]


def modes_markdown(paths: list[str | Path]) -> str:
    """One row per (scene, mode, video) of the generation-mode probes (`modes.py`)."""
    head = ["scene", "mode", "video", *[h for h, _ in MODE_FIGURES]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in paths:
        fig = json.loads(Path(p).read_text())
        for mode, d in fig.get("modes", {}).items():
            for name, v in d["scores"].items():
                cells = [_cell(v[k]) if k in v else "" for _, k in MODE_FIGURES]
                lines.append("| " + " | ".join([_scene(fig["config"]), mode.replace("_", " "), name, *cells]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    missing = [p for p in sys.argv[1:] if not Path(p).is_file()]
    if not sys.argv[1:] or missing:
        sys.exit("usage: python -m worldsim.eval.tables METRICS.json [METRICS.json ...] (written by `worldsim "
                 f"evaluate --out DIR`){'; not a file: ' + ', '.join(missing) if missing else ''}")
    print(markdown(sys.argv[1:]) + "\n\n" + probes_markdown(sys.argv[1:]))
    if any(probe_sets(json.loads(Path(p).read_text())) for p in sys.argv[1:]):
        print("\n" + consistency_markdown(sys.argv[1:]))
    if any(json.loads(Path(p).read_text()).get("modes") for p in sys.argv[1:]):
        print("\n" + modes_markdown(sys.argv[1:]))

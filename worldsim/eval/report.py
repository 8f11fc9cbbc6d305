"""The evaluation report: one self-contained HTML file (no network, no side files).

- Videos, embedded as base64 GIFs (every browser plays them; no codec needed): MuJoCo | prediction | |difference|
  side by side, context frames included, with a bar under the frames that is grey during the context and orange
  during the rollout and grows with time.
- Error-vs-horizon plots (matplotlib, embedded PNG) for the model and every baseline with their 95% bootstrap
  bands, and the parser floor where one exists.
- Tables: summary figures with intervals, the Physics-IQ parts and the physical variance, config and provenance.
"""

from __future__ import annotations

import base64
import html
import io
import json

import imageio.v3 as iio
import numpy as np

from worldsim.eval.tables import probe_sets
from worldsim.viz.video import difference, upscale

PANEL_PX = 128
PLOT_DB_TOP = 50.0
GAP_PX = 6
BAR_PX = 6
CONTEXT_BAR = (150, 150, 150)
ROLLOUT_BAR = (240, 140, 20)

# metric key -> (label, unit, higher is better)
CURVES = {
    "psnr": ("PSNR", "dB", True),
    "ssim": ("SSIM", "", True),
    "psnr_moving": ("PSNR, moving pixels", "dB", True),
    "position_px_vs_mujoco": ("centre error vs MuJoCo parse", "px", False),
    "velocity_px_vs_state": ("velocity error vs state (Kang)", "px/frame", False),
    "mse": ("MSE (Physics-IQ)", "[0,1]^2", False),
}
SUMMARY_ROWS = [
    ("psnr@1", "next-frame PSNR", "dB"), ("psnr", "PSNR, mean over horizon", "dB"), ("ssim", "SSIM", ""),
    ("psnr_moving", "PSNR, moving pixels", "dB"), ("ssim_moving", "SSIM, moving pixels", ""),
    ("position_px_vs_mujoco", "centre error vs MuJoCo parse", "px"),
    ("position_px_vs_state", "centre error vs state", "px"),
    ("position_m_vs_state", "centre error vs state", "m"),
    ("velocity_px_vs_state", "velocity error vs state (Kang)", "px/frame"),
    ("velocity_mps_vs_state", "velocity error vs state (Kang)", "m/s"),
    ("missing", "objects lost (fraction)", ""),
]
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]


def _fmt(est: dict | None, digits: int = 3) -> str:
    if est is None or est.get("value") is None:
        return "–"
    lo, hi = est["ci95"]
    ci = "" if lo is None or hi is None else f" <span class=ci>[{lo:.{digits}g}, {hi:.{digits}g}]</span>"
    return f"{est['value']:.{digits}g}{ci}"


def video_frames(truth: np.ndarray, pred: np.ndarray, context: int) -> np.ndarray:
    """(T, h, w, 3) MuJoCo and prediction (context frames included) -> (T, H, W, 3) side-by-side GIF frames."""
    return panels_video([truth, pred, difference(truth, pred)], np.arange(len(truth)) < context)


def panels_video(panels: list[np.ndarray], given: np.ndarray) -> np.ndarray:
    """Clips (T, h_i, w_i, 3) side by side, each scaled to PANEL_PX, over a progress bar that is grey on the given
    frames (`given`, (T,) bool) and orange on the made ones -> (T, H, W, 3) GIF frames."""
    t = len(given)
    panels = [upscale(x, PANEL_PX) for x in panels]
    ph = max(p.shape[1] for p in panels)
    width = sum(p.shape[2] for p in panels) + GAP_PX * (len(panels) - 1)
    out = np.full((t, ph + GAP_PX + BAR_PX, width, 3), 255, np.uint8)
    x0 = 0
    for p in panels:
        out[:, :p.shape[1], x0:x0 + p.shape[2]] = p
        x0 += p.shape[2] + GAP_PX
    for f in range(t):
        end = max(1, round(width * (f + 1) / t))
        out[f, ph + GAP_PX:, :end] = CONTEXT_BAR if given[f] else ROLLOUT_BAR
    return out


def gif_base64(frames: np.ndarray, fps: float) -> str:
    buf = io.BytesIO()
    iio.imwrite(buf, frames, extension=".gif", duration=1000.0 / fps, loop=0)
    return base64.b64encode(buf.getvalue()).decode()


def _plot(figures: dict, model: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scores = figures["scores"]
    names = [model] + [n for n in scores if n != model]
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    for ax, (key, (label, unit, higher)) in zip(axes.ravel(), CURVES.items()):
        for i, name in enumerate(names):
            est = scores[name]["per_step"][key]
            y = np.array([np.nan if v is None else v for v in est["value"]])
            lo = np.array([np.nan if v is None else v for v in est["ci95"][0]])
            hi = np.array([np.nan if v is None else v for v in est["ci95"][1]])
            x = np.arange(1, len(y) + 1)
            style = dict(lw=2.4 if name == model else 1.4, color=COLOURS[i % len(COLOURS)])
            ax.plot(x, y, label=name + (" (model)" if name == model else ""), **style)
            ax.fill_between(x, lo, hi, alpha=0.18, color=style["color"], lw=0)
        floor_key = key.replace("_vs_state", "_floor")
        if floor_key != key and floor_key in figures["floor"]["per_step"]:
            f = figures["floor"]["per_step"][floor_key]["value"]
            ax.plot(np.arange(1, len(f) + 1), [np.nan if v is None else v for v in f], "k--", lw=1,
                    label="parser floor")
        if key == "mse":
            v = figures["physical_variance"]["mse_per_step"]["value"]
            ax.plot(np.arange(1, len(v) + 1), [np.nan if x is None else x for x in v], "k:", lw=1.2,
                    label="physical variance")
        if unit == "dB":  # identical frames score the 100 dB cap: keep the learned models' range readable
            ax.set_ylim(top=min(ax.get_ylim()[1], PLOT_DB_TOP))
            label += f", cut at {PLOT_DB_TOP:g}"
        ax.set_title(f"{label} ({'↑' if higher else '↓'} better)", fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("horizon step")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes.ravel()[0].legend(fontsize=8)
    handles, labels = axes.ravel()[3].get_legend_handles_labels()
    axes.ravel()[3].legend(handles, labels, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1250px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;font-size:13px;margin:6px 0}td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.ci{color:#888;font-size:11px}
.model{background:#eef5ff}.muted{color:#777;font-size:12px}.vid{display:inline-block;margin:6px 14px 10px 0;font-size:12px}
.vid img{image-rendering:pixelated;display:block;border:1px solid #ccc}.lab{display:flex;justify-content:space-between;width:396px}
code{background:#f4f4f4;padding:1px 4px}
"""


CONSISTENCY_LABELS = {"cuts": "objects across camera cuts", "orbit": "3D consistency under the orbiting camera",
                      "push": "a pushed block stays where it was pushed",
                      "contact": "a pushed block moves from the frame its push begins",
                      "response": "Action response: the agent under its actions and under their mirror image"}


def render_html(evaluation) -> str:
    """The report of an `Evaluation` (see evaluate.py) as one HTML string."""
    fig, cfg, model = evaluation.figures, evaluation.config, evaluation.model
    scores = fig["scores"]
    names = [model] + [n for n in scores if n != model]
    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>worldsim evaluate: {e(model)} on "
             f"{e(cfg.scene)}</title><style>{CSS}</style></head><body>"]
    ident = fig["predictor"]
    sampling = ident.get("rollout")  # a world model's: the steps it ran, its file's own unless --steps said
    sampled = f", {sampling['steps']} {e(sampling['sampler'])} steps per frame" if sampling else ""
    parts.append(f"<h1>{e(model)} vs MuJoCo on <code>{e(cfg.scene)}</code> ({e(cfg.distribution)})</h1>"
                 f"<div class=muted>{fig['episodes']['n']} episodes, {cfg.context} context frames, {cfg.horizon}-frame "
                 f"rollouts{sampled} at {cfg.resolution}×{cfg.resolution} px, {fig['scene']['fps']:g} frames/s, "
                 f"camera {e(fig['scene']['camera'])}; 95% bootstrap intervals over episodes in brackets. "
                 f"Predictor sha256 {e(str(ident.get('sha256', ''))[:16])}…; git {e(str(fig['git'].get('commit'))[:12])}"
                 f"{' (dirty)' if fig['git'].get('dirty') else ''}; {e(fig['created'])}.</div>")
    # summary table
    head = "".join(f"<th{' class=model' if n == model else ''}>{e(n)}</th>" for n in names)
    rows = []
    iq_row = "".join(f"<td{' class=model' if n == model else ''}>{_fmt(scores[n]['physics_iq']['score'])}</td>"
                     for n in names)
    rows.append(f"<tr><td>Physics-IQ score (%)</td>{iq_row}<td>100 (definition)</td></tr>")
    for key, label, unit in SUMMARY_ROWS:
        cells = "".join(f"<td{' class=model' if n == model else ''}>{_fmt(scores[n]['summary'].get(key))}</td>"
                        for n in names)
        floor_key = key.replace("_vs_state", "_floor")
        floor = _fmt(fig["floor"]["summary"].get(floor_key)) if floor_key != key else ""
        rows.append(f"<tr><td>{e(label)}{f' ({e(unit)})' if unit else ''}</td>{cells}<td>{floor}</td></tr>")
    parts.append(f"<h2>Summary (mean over the horizon unless noted)</h2><table><tr><th>figure</th>{head}"
                 f"<th>parser floor</th></tr>{''.join(rows)}</table>")
    # plots
    parts.append(f"<h2>Error vs horizon</h2><img alt='error vs horizon' style='max-width:100%' "
                 f"src='data:image/png;base64,{_plot(fig, model)}'>")
    # videos
    ep, fps, k = evaluation.episodes, fig["scene"]["fps"], cfg.context
    n_vid = min(cfg.videos, len(ep))
    parts.append("<h2>Videos: MuJoCo | prediction | difference</h2><div class=muted>Bar: grey = context "
                 "frames (given), orange = rollout.</div>")
    paired = evaluation.rollouts[model]
    for i in range(n_vid):
        pred = np.concatenate([ep.frames[i, :k], paired.prediction[i]], 0)
        frames = video_frames(ep.frames[i, :k + paired.horizon], pred, k)
        parts.append(f"<div class=vid><div class=lab><span>MuJoCo</span><span>{e(model)}</span><span>|diff|</span>"
                     f"</div><img data-frames='{len(frames)}' src='data:image/gif;base64,{gif_base64(frames, fps)}'>"
                     f"episode {i} (seed {int(ep.seeds[i])})</div>")
    others = [n for n in names if n != model]
    if others and n_vid:
        parts.append("<h2>Baselines on episode 0</h2>")
        for n in others:
            pred = np.concatenate([ep.frames[0, :k], evaluation.rollouts[n].prediction[0]], 0)
            frames = video_frames(ep.frames[0, :k + paired.horizon], pred, k)
            parts.append(f"<div class=vid><div class=lab><span>MuJoCo</span><span>{e(n)}</span><span>|diff|</span>"
                         f"</div><img data-frames='{len(frames)}' src='data:image/gif;base64,{gif_base64(frames, fps)}'>"
                         f"{e(n)}</div>")
    # Physics-IQ table
    var = fig["physical_variance"]
    iq_keys = [("spatial_iou", "spatial IoU"), ("spatiotemporal_iou", "spatiotemporal IoU"),
               ("weighted_spatial_iou", "weighted spatial IoU"), ("mse", "MSE")]
    head = "".join(f"<th>{lab}</th>" for _, lab in iq_keys)
    rows = [f"<tr><td>physical variance (MuJoCo vs a perturbed take)</td>"
            + "".join(f"<td>{_fmt(var[kk])}</td>" for kk, _ in iq_keys) + "<td>100</td></tr>"]
    for n in names:
        piq = scores[n]["physics_iq"]
        floored = [kk for kk, _ in iq_keys[:3] if piq.get(f"{kk}_floored")]
        note = f" (variance floored: {', '.join(floored)})" if floored else ""
        rows.append(f"<tr{' class=model' if n == model else ''}><td>{e(n)}</td>"
                    + "".join(f"<td>{_fmt(piq[kk])}</td>" for kk, _ in iq_keys)
                    + f"<td>{_fmt(piq['score'])}{note}</td></tr>")
    parts.append(f"<h2>Physics-IQ parts</h2><table><tr><th></th>{head}<th>score (%)</th></tr>{''.join(rows)}"
                 "</table><div class=muted>Score = mean of the three IoUs over the variance's, minus the MSE excess, "
                 "×100, clipped to 0–100 (Motamed et al. 2025).</div>")
    # physics-law probes
    all_probes = scores[model].get("probes", {})
    probes = {p: v for p, v in all_probes.items() if "state" in v}
    perm = {p: v for p, v in all_probes.items() if "state" not in v}
    if perm:
        labels = {"reemergence_rate": "re-emergence rate", "error_after_reemergence_px": "centre error after re-emergence (px)",
                  "colour_kept": "colour kept after re-emergence", "count_conserved": "object count conserved (frames)",
                  "spontaneous_appearance": "spontaneous appearances (per hidden object-frame)"}
        head = "".join(f"<th{' class=model' if n == model else ''}>{e(n)}</th>" for n in names)
        rows = [f"<tr><td>{e(labels.get(p, p))}</td>"
                + "".join(f"<td{' class=model' if n == model else ''}>{_fmt(scores[n]['probes'].get(p, {}).get('model'))}</td>"
                          for n in names) + f"<td>{v['model']['episodes_with_events']}</td></tr>" for p, v in perm.items()]
        parts.append(f"<h2>Object permanence</h2><table><tr><th>probe</th>{head}<th>episodes</th></tr>{''.join(rows)}"
                     "</table><div class=muted>MuJoCo itself scores 1, 0 px, 1, 1 and 0.</div>")
    if probes:
        labels = {"gravity_ratio": "gravity fitted ÷ true g", "restitution": "restitution at wall bounces",
                  "collision_momentum_change": "momentum change at collisions (relative)",
                  "collision_energy_change": "energy change at collisions (relative)"}
        head = "".join(f"<th{' class=model' if n == model else ''}>{e(n)}</th>" for n in names)
        rows = []
        for probe, by_source in probes.items():
            cells = "".join(f"<td{' class=model' if n == model else ''}>"
                            f"{_fmt(scores[n]['probes'].get(probe, {}).get('model'))}</td>" for n in names)
            rows.append(f"<tr><td>{e(labels.get(probe, probe))}</td><td>{_fmt(by_source['state'])}</td>"
                        f"<td>{_fmt(by_source['mujoco'])}</td>{cells}<td>{by_source['state']['episodes_with_events']}</td></tr>")
        parts.append(f"<h2>Physics-law probes</h2><table><tr><th>probe</th><th>MuJoCo state</th><th>parser on MuJoCo "
                     f"(floor)</th>{head}<th>episodes</th></tr>{''.join(rows)}</table><div class=muted>Per episode, "
                     "averaged over the contact-free stretches or MuJoCo contact events inside the rollout window; "
                     "the law's value: gravity 1, restitution 1, changes 0.</div>")
    # violation of expectation
    if fig.get("voe"):
        v = fig["voe"]
        scorers = [k for k in v if k != "sets_per_type"]
        kinds = list(v[scorers[0]])
        head = "".join(f"<th>{e(k)}</th>" for k in kinds)
        rows = "".join(f"<tr><td>{e(sc)}</td>" + "".join(f"<td>{_fmt(v[sc][k]['accuracy'])}</td>" for k in kinds)
                       + "</tr>" for sc in scorers)
        parts.append(f"<h2>Violation of expectation ({v['sets_per_type']} sets per type)</h2><table><tr><th>scorer"
                     f"</th>{head}</tr>{rows}</table><div class=muted>Accuracy: fraction of sets where the possible clip "
                     "is strictly less surprising than its impossible twin (chance 0.5).</div>")
    # consistency and action-response probes, prompt adherence
    for probe, d in probe_sets(fig).items():
        preds = list(d["scores"])
        keys = list(d["scores"][preds[0]])
        keys = [kk for kk in keys if not kk.endswith("_per_step")]
        head = "".join(f"<th>{e(kk)}</th>" for kk in keys)
        rows = "".join(f"<tr{' class=model' if n == model else ''}><td>{e(n)}</td>"
                       + "".join(f"<td>{_fmt(d['scores'][n][kk])}</td>" for kk in keys) + "</tr>" for n in preds)
        title = ("" if probe == "response" else "Consistency: ") + CONSISTENCY_LABELS.get(probe, probe)
        parts.append(f"<h2>{e(title)} ({d['episodes']} episodes, {d['checked']} with a check, {d['horizon']}-frame "
                     f"rollouts)</h2><table><tr><th>predictor</th>{head}</tr>{rows}</table><div class=muted>Pass rate per "
                     "episode (the exact simulator scores 1); errors in px; definitions in docs/metrics.md.</div>")
    for mode, d in fig.get("modes", {}).items():
        videos = list(d["scores"])
        keys = list(dict.fromkeys(kk for n in videos for kk in d["scores"][n]))  # figures differ per row
        head = "".join(f"<th>{e(kk)}</th>" for kk in keys)
        rows = "".join(f"<tr{' class=model' if n == model else ''}><td>{e(n)}</td>"
                       + "".join(f"<td>{_fmt(d['scores'][n].get(kk))}</td>" for kk in keys) + "</tr>" for n in videos)
        parts.append(f"<h2>Generation mode: {e(mode.replace('_', ' '))} ({d['episodes']} episodes)</h2><table><tr>"
                     f"<th>video</th>{head}</tr>{rows}</table><div class=muted>Errors in px (preview: draft px), steps "
                     "in 8-bit levels (RMS); definitions in docs/metrics.md, \"Generation modes\".</div>")
        ex = evaluation.mode_examples.get(mode)
        if ex:
            frames = panels_video(ex["panels"], ex["given"])
            labels = "".join(f"<span>{e(x)}</span>" for x in ex["labels"])
            parts.append(f"<div class=vid><div class=lab>{labels}</div><img data-frames='{len(frames)}' "
                         f"src='data:image/gif;base64,{gif_base64(frames, fps)}'>episode 0; grey bar = given frames"
                         "</div>")
    if fig.get("adherence"):
        a = fig["adherence"]
        rows = "".join(f"<tr><td>{e(n)}</td><td>{_fmt(v)}</td></tr>" for n, v in a["scores"].items())
        guided = f", caption guidance {a['guidance_text']:g}" if a.get("guidance_text", 1.0) != 1.0 else ""
        if a.get("rollout_after"):
            guided += f", frames after {a['rollout_after']} rolled out"
        if a.get("stagger"):
            guided += f", text-made frames {a['stagger']} steps apart"
        parts.append(f"<h2>Prompt adherence ({len(a['prompts'])} prompts, {a['frames']} frames{guided})</h2><table><tr>"
                     f"<th>video</th><th>adherence (%)</th></tr>{rows}</table>")
    # provenance
    prov = {"config": fig["config"], "predictor": fig["predictor"], "thresholds": fig["thresholds"], "git": fig["git"]}
    parts.append(f"<h2>Configuration and provenance</h2><pre style='font-size:11px;background:#f8f8f8;padding:8px;"
                 f"white-space:pre-wrap'>{e(json.dumps(prov, indent=1))}</pre></body></html>")
    return "".join(parts)

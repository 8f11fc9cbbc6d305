"""`worldsim evaluate`: score a predictor and the baselines against MuJoCo on paired rollouts of one scene.

    worldsim evaluate --scene bounce --model copy-last --episodes 64 --context 4 --horizon 16 --out runs/eval

writes `metrics.json` (every figure with its bootstrap 95% interval, the config, the git commit, the predictor's
identity and hash, the fixed thresholds) and `report.html` (self-contained: videos, plots, tables). `--model` is a
baseline name (`copy-last`, `linear`, `perturbed`) or a weights file; the baselines are always scored beside it on
the same episodes. Definitions: docs/metrics.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from worldsim.errors import ConfigError, WeightsError
from worldsim.eval import metrics as M
from worldsim.eval import parse as P
from worldsim.eval import physics
from worldsim.eval import predictor as PR
from worldsim.eval.paired import Episodes, Paired, fresh_episodes, rollout, store_episodes
from worldsim.eval.permanence import MIN_OBJECT_PIXELS, REEMERGE_RADII, permanence
from worldsim.eval.stats import N_RESAMPLES, bootstrap, bootstrap_mean, nanmean

VARIANCE_SEED_OFFSET = 10_000  # the physical-variance take uses another perturbation draw than the baseline
VIDEO_EPISODES = 4
PROBES = ("consistency", "response", "modes")


@dataclass(frozen=True)
class EvalConfig:
    scene: str = "bounce"
    model: str = "copy-last"
    episodes: int = 64
    context: int = 4
    horizon: int = 16
    start: int = 0  # episode frame of the first context frame
    policy: str = "random"  # actions of fresh actuated episodes: random or scripted (paired.py)
    store: str | None = None  # read test episodes from this store instead of drawing fresh ones
    split: str = "test"  # the store's split
    voe: int = 0  # matched violation-of-expectation sets per type (scenes with an occluder; >= 50 for figures)
    distribution: str = "id"
    resolution: int = 32
    camera: str | None = None
    seed: int = 0
    batch_size: int = 16
    videos: int = VIDEO_EPISODES
    baselines: tuple[str, ...] = PR.BASELINES
    bootstrap: int = N_RESAMPLES
    probes: tuple[str, ...] = ()  # extra probe families: "consistency" (consistency.py), "response" (response.py),
    #                               "modes" (modes.py: extend backward, connect, loop, preview)
    mode_steps: int = 8  # denoising steps of the mode probes' whole-clip generations (generate()'s default)
    adherence: int = 0  # text->video prompts scored for adherence (adherence.py; models with generate(mode="t2v"))
    holdout: str | None = None  # held-out quantity (worldsim.data.splits) for distribution "heldout"
    steps: int | None = None  # a world model's denoising steps per frame (None: the weights' own, RolloutConfig)
    sampler: str = "euler"
    context_sigma: float = 0.0  # noise level its own context frames are shown at (GameNGen)
    guidance_actions: float = 1.0  # classifier-free guidance scale of a world model's actions (1: none)
    guidance_text: float = 1.0  # classifier-free guidance scale of the captions of the adherence samples (1: none)
    adherence_rollout_after: int | None = None  # adherence samples: first K frames together (None: the weights')
    adherence_stagger: int | None = None  # adherence samples: frame j settles S steps behind j - 1 (None: the weights')


@dataclass
class Evaluation:
    """Everything `write` needs: the figures (JSON-ready) and the rollouts behind the videos."""

    config: EvalConfig
    figures: dict
    episodes: Episodes
    rollouts: dict[str, Paired] = field(default_factory=dict)  # predictor name -> paired rollout
    model: str = ""
    mode_examples: dict = field(default_factory=dict)  # generation mode -> episode 0's videos (modes.run)


def load_predictor(model: str, scene: str, sampling: dict | None = None) -> PR.Predictor:
    """A baseline by name, or a world model from a worldsim weights file (`worldsim/weights.py`), refused when its
    metadata names another scene, then sampled through `worldsim.rollout` (`world_model.WorldModelPredictor`) with
    `sampling` (`RolloutConfig` fields: steps, sampler, context_sigma, guidance)."""
    from worldsim.weights import check_compatible, read_meta

    if model in PR.BASELINES:
        return PR.baseline(model, scene)
    path = Path(model)
    if not path.is_file():
        raise ConfigError(f"{model!r} is neither a baseline ({', '.join(PR.BASELINES)}) nor a weights file",
                          field="--model")
    check_compatible(read_meta(path), path, name=scene)  # WeightsError naming scene.name
    try:
        importlib.import_module("worldsim.rollout.autoregressive")
    except ImportError:
        raise ConfigError("no world-model sampler is installed (worldsim.rollout)", source=path,
                          field="--model") from None
    from worldsim.eval.world_model import WorldModelPredictor
    from worldsim.rollout.autoregressive import RolloutConfig

    return WorldModelPredictor.load(path, RolloutConfig(**(sampling or {})).check())


def check_predictor(predictor, scene: str, resolution: tuple[int, int]) -> None:
    """Refuse a predictor made for another scene or resolution before anything is rolled out."""
    if not isinstance(predictor, PR.Predictor):
        raise ConfigError(f"{type(predictor).__name__} does not implement the Predictor protocol", field="--model")
    if predictor.scenes is not None and scene not in predictor.scenes:
        raise WeightsError(f"predictor {predictor.name!r} was made for scenes {list(predictor.scenes)}, "
                           f"not {scene!r}", field="scene")
    if predictor.resolution is not None:
        res = tuple(predictor.resolution)
        allowed = [res] if res and isinstance(res[0], int) else [tuple(r) for r in res]
        if tuple(resolution) not in allowed:
            raise WeightsError(f"predictor {predictor.name!r} works at {allowed}, not {tuple(resolution)}",
                               field="resolution")


def git_commit() -> dict:
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def _validate(cfg: EvalConfig) -> None:
    from worldsim.sim.registry import get_scene

    for name in ("episodes", "context", "horizon", "batch_size", "resolution", "mode_steps"):
        v = getattr(cfg, name)
        if not isinstance(v, int) or v < (0 if name == "episodes" else 1):
            raise ConfigError(f"must be a positive integer, got {v!r}", field=f"--{name.replace('_', '-')}")
    if cfg.episodes == 0:
        raise ConfigError("the test split is empty: --episodes is 0", field="--episodes")
    if cfg.context < 2:
        raise ConfigError(f"need at least 2 context frames (velocities), got {cfg.context}", field="--context")
    spec = get_scene(cfg.scene).spec
    if cfg.start < 0:
        raise ConfigError(f"must be >= 0, got {cfg.start}", field="--start")
    if cfg.voe < 0 or (cfg.voe and spec.occluder is None):
        raise ConfigError(f"violation-of-expectation sets need a scene with an occluder (occlusion), not {cfg.scene!r}"
                          if cfg.voe else f"must be >= 0, got {cfg.voe}", field="--voe")
    if cfg.start + cfg.context + cfg.horizon > spec.max_frames:
        raise ConfigError(f"--start {cfg.start} + --context {cfg.context} + --horizon {cfg.horizon} frames is longer "
                          f"than the episodes of {cfg.scene} ({spec.max_frames} frames)", field="--horizon")
    bad = [p for p in cfg.probes if p not in PROBES]
    if bad:
        raise ConfigError(f"unknown probe family {bad[0]!r}; known: {', '.join(PROBES)}", field="--probes")
    if "consistency" in cfg.probes:
        from worldsim.eval.consistency import CUT_STEPS, applicable

        if not applicable(cfg.scene):
            raise ConfigError(f"no consistency probe applies to {cfg.scene!r}", field="--probes")
        if "cuts" in applicable(cfg.scene) and cfg.horizon <= CUT_STEPS[1]:
            raise ConfigError(f"the cut probe needs a horizon above {CUT_STEPS[1]}, got {cfg.horizon}",
                              field="--horizon")
    if "response" in cfg.probes:
        from worldsim.eval.response import agents

        agents(cfg.scene)  # ConfigError for a scene whose actions move neither an object nor the camera
    if "modes" in cfg.probes and cfg.context % 2:
        raise ConfigError(f"the mode probes need an even --context (connect's head and tail), got {cfg.context}",
                          field="--context")
    if cfg.adherence < 0:
        raise ConfigError(f"must be >= 0, got {cfg.adherence}", field="--adherence")
    if not np.isfinite(cfg.guidance_text) or cfg.guidance_text < 0:
        raise ConfigError(f"must be finite and >= 0, got {cfg.guidance_text}", field="--guidance-text")
    if cfg.adherence_rollout_after is not None:
        from worldsim.eval.adherence import FRAMES

        if not cfg.adherence:
            raise ConfigError("applies to --adherence's samples; give --adherence N", field="--adherence-rollout-after")
        if cfg.adherence_rollout_after < 1:
            raise ConfigError(f"must be >= 1 frame ({FRAMES} or more: the whole clip together), got "
                              f"{cfg.adherence_rollout_after}", field="--adherence-rollout-after")
    if cfg.adherence_stagger is not None:
        if not cfg.adherence:
            raise ConfigError("applies to --adherence's samples; give --adherence N", field="--adherence-stagger")
        if cfg.adherence_stagger < 0:
            raise ConfigError(f"must be >= 0 steps (0: the frames together), got {cfg.adherence_stagger}",
                              field="--adherence-stagger")
    if cfg.adherence:
        from worldsim.eval.adherence import PROMPTS

        if cfg.scene not in PROMPTS:
            raise ConfigError(f"no prompt set for {cfg.scene!r}; prompt sets exist for {sorted(PROMPTS)}",
                              field="--adherence")
    unknown = [b for b in cfg.baselines if b not in PR.BASELINES]
    if unknown:
        raise ConfigError(f"unknown baseline {unknown[0]!r}; known: {', '.join(PR.BASELINES)}", field="baselines")


def score(paired: Paired, variance: dict[str, np.ndarray], colours: np.ndarray, motion_plane: str,
          n_resamples: int, seed: int, names: list[str] | None = None,
          agents: frozenset[int] = frozenset()) -> dict:
    """Every figure of one predictor: per-step curves and summaries with intervals, its Physics-IQ score and the
    physics-law probes (model, with MuJoCo's state and the parser floor beside it)."""
    per_episode = {**M.image_metrics(paired), **M.object_metrics(paired, colours, motion_plane)}
    window = np.concatenate([paired.episodes.frames[:, paired.context - 1:paired.context], paired.prediction], 1)
    truth = paired.episodes.frames[:, paired.context - 1:paired.context + paired.horizon]
    iq = M.physics_iq_parts(truth, window)
    per_episode["mse"] = iq.pop("mse_step")
    per_step, summary = {}, {}
    for name, v in per_episode.items():
        per_step[name] = bootstrap_mean(v, n_resamples=n_resamples, seed=seed).to_json()
        summary[name] = bootstrap_mean(nanmean(v, 1), n_resamples=n_resamples, seed=seed).to_json()
        summary[f"{name}@1"] = bootstrap_mean(v[:, 0], n_resamples=n_resamples, seed=seed).to_json()
    keys = list(M.IQ_IOUS) + ["mse"]
    arrays = [iq[k] for k in keys] + [variance[k] for k in keys]

    def stat(*a):
        return M.physics_iq_score(dict(zip(keys, a[:4])), dict(zip(keys, a[4:])))["score"]

    iq_score = M.physics_iq_score({k: iq[k] for k in keys}, {k: variance[k] for k in keys})
    est = bootstrap(stat, *arrays, n_resamples=min(n_resamples, 1000), seed=seed)
    physics_iq = {"score": est.to_json(), **{k: v for k, v in iq_score.items() if k != "score"},
                  **{k: bootstrap_mean(iq[k], n_resamples=n_resamples, seed=seed).to_json() for k in keys}}
    probes = {}
    if names is not None:
        tr = M.tracks(paired, colours, motion_plane)
        for probe, by_source in physics.probe_all(tr, paired.episodes, names, agents).items():
            if np.isfinite(by_source["state"]).any():
                probes[probe] = {src: bootstrap_mean(v, n_resamples=n_resamples, seed=seed).to_json()
                                 | {"episodes_with_events": int(np.isfinite(v).sum())}
                                 for src, v in by_source.items()}
        if any(e["type"] == "emerged" for evs in paired.episodes.events for e in evs):
            for probe, v in permanence(paired, colours, names).items():
                probes[probe] = {"model": bootstrap_mean(v, n_resamples=n_resamples, seed=seed).to_json()
                                 | {"episodes_with_events": int(np.isfinite(v).sum())}}
    return {"per_step": per_step, "summary": summary, "physics_iq": physics_iq, "probes": probes}


def evaluate(cfg: EvalConfig, predictor: PR.Predictor | None = None, *, progress: bool = False) -> Evaluation:
    """Roll out MuJoCo, the predictor and the baselines on the same episodes and score them all."""
    from worldsim.sim.events import actuated_objects
    from worldsim.sim.registry import get_scene

    _validate(cfg)
    scene = get_scene(cfg.scene)
    predictor = predictor if predictor is not None else load_predictor(
        cfg.model, cfg.scene, {"steps": cfg.steps, "sampler": cfg.sampler, "context_sigma": cfg.context_sigma,
                                    "guidance": {"actions": cfg.guidance_actions} if cfg.guidance_actions != 1.0 else {}})
    check_predictor(predictor, cfg.scene, (cfg.resolution, cfg.resolution))
    colours = np.array([o.colour for o in scene.spec.objects])
    if cfg.store is not None:
        episodes = store_episodes(cfg.store, cfg.context + cfg.horizon, split=cfg.split, n=cfg.episodes,
                                  start=cfg.start, scene=cfg.scene, resolution=cfg.resolution, progress=progress)
    else:
        episodes = fresh_episodes(cfg.scene, cfg.episodes, cfg.context + cfg.horizon, distribution=cfg.distribution,
                                  seed=cfg.seed, resolution=cfg.resolution, camera=cfg.camera, start=cfg.start,
                                  policy=cfg.policy, holdout=cfg.holdout, progress=progress)
    run = {predictor.name: predictor}
    for name in cfg.baselines:
        run.setdefault(name, PR.baseline(name, cfg.scene))
    rollouts = {name: rollout(p, episodes, cfg.context, cfg.horizon, seed=cfg.seed, batch_size=cfg.batch_size,
                              progress=progress) for name, p in run.items()}
    take2 = rollout(PR.PerturbedMuJoCo(cfg.scene), episodes, cfg.context, cfg.horizon,
                    seed=cfg.seed + VARIANCE_SEED_OFFSET, batch_size=cfg.batch_size)
    truth = episodes.frames[:, cfg.context - 1:cfg.context + cfg.horizon]
    variance = M.physics_iq_parts(truth, np.concatenate([truth[:, :1], take2.prediction], 1))
    variance_step = variance.pop("mse_step")
    names = [o.name for o in scene.spec.objects]
    agents = frozenset(actuated_objects(scene))
    scored = {name: score(p, variance, colours, scene.spec.motion_plane, cfg.bootstrap, cfg.seed, names, agents)
              for name, p in tqdm(rollouts.items(), desc="scoring", unit="predictor", disable=not progress)}
    floor = {name: scored[predictor.name]["per_step"][name] for name in scored[predictor.name]["per_step"]
             if name.endswith("_floor")}
    floor_summary = {name: scored[predictor.name]["summary"][name] for name in floor}
    figures = {
        "worldsim_eval_version": 1,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "config": {**asdict(cfg), "baselines": list(cfg.baselines)},
        "git": git_commit(),
        "scene": {"name": cfg.scene, "fps": episodes.fps, "camera": episodes.camera,
                  "motion_plane": scene.spec.motion_plane,
                  "objects": [{"name": o.name, "colour": list(o.colour)} for o in scene.spec.objects]},
        "predictor": predictor.identity(),
        "baselines": {name: run[name].identity() for name in cfg.baselines},
        "thresholds": {"parse_distance_rgb": P.PARSE_DISTANCE, "fully_visible": P.FULLY_VISIBLE,
                       "motion_distance_rgb": M.MOTION_DISTANCE, "psnr_cap_db": M.PSNR_CAP_DB,
                       "iou_variance_floor": M.IOU_VARIANCE_FLOOR, "perturb_pos_m": PR.PERTURB_POS_M,
                       "perturb_vel_mps": PR.PERTURB_VEL_MPS, "bootstrap_resamples": cfg.bootstrap,
                       "min_fit_frames": physics.MIN_FIT_FRAMES, "free_fall_tolerance": physics.FREE_FALL_TOLERANCE,
                       "min_object_pixels": MIN_OBJECT_PIXELS, "reemerge_radii": REEMERGE_RADII, "ci_level": 0.95},
        "physical_variance": {**{k: bootstrap_mean(v, n_resamples=cfg.bootstrap, seed=cfg.seed).to_json()
                                 for k, v in variance.items()},
                              "mse_per_step": bootstrap_mean(variance_step, n_resamples=cfg.bootstrap,
                                                             seed=cfg.seed).to_json()},
        "floor": {"per_step": floor, "summary": floor_summary},
        "model": scored[predictor.name],
        "scores": scored,
        "episodes": {"n": len(episodes), "seeds": episodes.seeds.tolist(), "distribution": episodes.distribution,
                     "source": f"store {cfg.store} split {cfg.split}" if cfg.store else "fresh MuJoCo episodes"},
    }
    if cfg.voe:
        figures["voe"] = _voe(cfg, predictor, progress)
    if "consistency" in cfg.probes:
        from worldsim.eval import consistency

        figures["consistency"] = consistency.run(
            cfg.scene, run, n=cfg.episodes, context=cfg.context, horizon=cfg.horizon, seed=cfg.seed,
            resolution=cfg.resolution, distribution=cfg.distribution, batch_size=cfg.batch_size,
            n_resamples=cfg.bootstrap, holdout=cfg.holdout)
        figures["thresholds"]["consistency"] = consistency.THRESHOLDS
    if "response" in cfg.probes:
        from worldsim.eval import response

        figures["response"] = response.run(
            cfg.scene, run, episodes, context=cfg.context, horizon=cfg.horizon, seed=cfg.seed,
            batch_size=cfg.batch_size, n_resamples=cfg.bootstrap,
            given={name: paired.prediction for name, paired in rollouts.items()})
        figures["thresholds"]["response"] = response.THRESHOLDS
    mode_examples = {}
    if "modes" in cfg.probes:
        from worldsim.eval import modes

        figures["modes"] = modes.run(
            cfg.scene, getattr(predictor, "model", None), name=predictor.name, n=cfg.episodes, given=cfg.context,
            made=cfg.horizon, seed=cfg.seed, start=cfg.start, resolution=cfg.resolution,
            distribution=cfg.distribution, steps=cfg.mode_steps, sampler=cfg.sampler, batch_size=cfg.batch_size,
            n_resamples=cfg.bootstrap, progress=progress, examples=mode_examples)
        figures["thresholds"]["modes"] = modes.THRESHOLDS
    if cfg.adherence:
        from worldsim.eval import adherence

        figures["adherence"] = adherence.run(cfg.scene, predictor, n=cfg.adherence, seed=cfg.seed,
                                             resolution=cfg.resolution, n_resamples=cfg.bootstrap,
                                             guidance_text=cfg.guidance_text,
                                             rollout_after=cfg.adherence_rollout_after,
                                             stagger=cfg.adherence_stagger)
    return Evaluation(cfg, figures, episodes, rollouts, predictor.name, mode_examples)


def _voe(cfg: EvalConfig, predictor, progress: bool) -> dict:
    """VoE accuracy of the predictor (when it can score surprise) beside the exact-simulator oracle."""
    from worldsim.eval import voe

    sets = voe.make_sets(cfg.voe, scene=cfg.scene, seed=cfg.seed, resolution=cfg.resolution,
                         distribution=cfg.distribution, progress=progress)
    out = {"sets_per_type": cfg.voe, "simulator (oracle)": voe.accuracy(voe.SimulatorSurprise(cfg.scene), sets,
                                                                        scene=cfg.scene, seed=cfg.seed)}
    if hasattr(predictor, "denoising_loss"):
        scorer = voe.DenoisingSurprise(predictor.denoising_loss, name=predictor.name)
        out[predictor.name] = voe.accuracy(scorer, sets, scene=cfg.scene, seed=cfg.seed, progress=progress)
    if hasattr(predictor, "next_frame_loss"):
        name = f"{predictor.name} next-frame"
        scorer = voe.DenoisingSurprise(predictor.next_frame_loss, name=name)
        out[name] = voe.accuracy(scorer, sets, scene=cfg.scene, seed=cfg.seed, progress=progress)
    return out


def write(evaluation: Evaluation, out: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write `metrics.json` and `report.html` into `out`."""
    from worldsim.eval.report import render_html

    out = Path(out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError("folder is not empty; pass --overwrite or choose another --out", source=out, field="--out")
    out.mkdir(parents=True, exist_ok=True)
    js = out / "metrics.json"
    js.write_text(json.dumps(evaluation.figures, indent=1, allow_nan=False))
    html = out / "report.html"
    html.write_text(render_html(evaluation), encoding="utf-8")
    return js, html


# --- CLI ----------------------------------------------------------------------------------------------------

def add_arguments(p: argparse.ArgumentParser) -> None:
    d = EvalConfig()
    p.add_argument("--scene", default=None, help=f"registered scene (default: the store's, else {d.scene})")
    p.add_argument("--model", default=d.model,
                   help=f"a baseline ({', '.join(PR.BASELINES)}) or a weights file (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=d.episodes, help="test episodes (default: %(default)s)")
    p.add_argument("--context", type=int, default=d.context, help="context frames k (default: %(default)s)")
    p.add_argument("--horizon", type=int, default=d.horizon, help="frames to roll out H (default: %(default)s)")
    p.add_argument("--store", default=None, help="a recorded store: evaluate on its --split instead of fresh episodes")
    p.add_argument("--split", default=d.split, help="the store's split (default: %(default)s)")
    p.add_argument("--voe", type=int, default=d.voe,
                   help="violation-of-expectation sets per type (occlusion; the model needs a denoising loss)")
    p.add_argument("--start", type=int, default=d.start,
                   help="episode frame of the first context frame, e.g. 14 to cover occlusion's occlusion (default: %(default)s)")
    p.add_argument("--policy", default=d.policy, choices=["random", "scripted"],
                   help="actions of actuated scenes: random (held 5 frames) or the scene's scripted expert (default: %(default)s)")
    p.add_argument("--distribution", default=d.distribution,
                   help="id, ood, ood:NAME or heldout (worldsim.data.splits' held-out combinations), or several separated by commas for a generalisation table "
                        "(one sub-folder each; default: %(default)s)")
    p.add_argument("--probes", default="", help="extra probe families, comma-separated: consistency (camera cuts, "
                   "orbit 3D consistency, push persistence and contact), response (mirrored actions), modes (extend backward, connect, loop, "
                   "low-res preview against MuJoCo; docs/metrics.md)")
    p.add_argument("--mode-steps", type=int, default=d.mode_steps,
                   help="denoising steps of the mode probes' whole-clip generations (default: %(default)s)")
    p.add_argument("--adherence", type=int, default=0,
                   help="text->video prompts scored for prompt adherence (the model needs generate(mode='t2v'))")
    p.add_argument("--holdout", default=None,
                   help="held-out quantity for --distribution heldout (default: radius); with it, id draws the kept halves")
    p.add_argument("--resolution", type=int, default=None,
                   help=f"frame size in px (default: a square --store's, else {d.resolution})")
    p.add_argument("--camera", default=None, help="camera (default: the scene's first)")
    p.add_argument("--seed", type=int, default=d.seed, help="episode and bootstrap seed (default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="episodes per predict call")
    p.add_argument("--videos", type=int, default=d.videos, help="episodes shown as videos (default: %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps,
                   help="a world model's denoising steps per frame (default: the weights' own, 3 unless their file "
                        "says)")
    p.add_argument("--sampler", default=d.sampler,
                   help="a world model's sampler: euler, heun or euler_a (ancestral) (default: %(default)s)")
    p.add_argument("--context-sigma", type=float, default=d.context_sigma,
                   help="noise level a world model's context frames are shown at (default: %(default)s)")
    p.add_argument("--guidance-actions", type=float, default=d.guidance_actions,
                   help="classifier-free guidance scale of a world model's actions; 1 is none (default: %(default)s)")
    p.add_argument("--guidance-text", type=float, default=d.guidance_text,
                   help="classifier-free guidance scale of the captions of --adherence's text->video samples; 1 is "
                        "none (default: %(default)s)")
    p.add_argument("--adherence-rollout-after", type=int, default=d.adherence_rollout_after,
                   help="--adherence's samples: denoise the first K frames together and roll the rest out (default: "
                        "the weights' record, else the whole clip; 32 or more: the whole clip together)")
    p.add_argument("--adherence-stagger", type=int, default=d.adherence_stagger,
                   help="--adherence's samples: each frame denoised together settles S steps behind the one before "
                        "(default: the weights' record, else 0: all together)")
    p.add_argument("--out", type=Path, default=Path("worldsim-eval"), help="output folder (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty --out folder")


def main(args: argparse.Namespace) -> int:
    from worldsim.eval.tables import generalisation_all_markdown, generalisation_markdown

    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        raise ConfigError("folder is not empty; pass --overwrite or choose another --out", source=out, field="--out")
    scene, resolution = args.scene, args.resolution
    if args.store is not None and (scene is None or resolution is None):
        from worldsim.data.store import open_store

        attrs = open_store(args.store).attrs
        scene = attrs["scene"] if scene is None else scene
        height, width = attrs["resolution"]
        if resolution is None and height == width:  # a non-square store is refused by the check below, with its size
            resolution = height
    scene = EvalConfig.scene if scene is None else scene
    resolution = EvalConfig.resolution if resolution is None else resolution
    dists = [d.strip() for d in args.distribution.split(",") if d.strip()]
    if not dists:
        raise ConfigError("expected id, ood, ood:NAME or a comma-separated list of them", field="--distribution")
    holdout = args.holdout
    if holdout is None and any(d == "heldout" for d in dists):
        from worldsim.eval.paired import HOLDOUT_QUANTITY

        holdout = HOLDOUT_QUANTITY
    written = []
    for dist in dists:
        cfg = EvalConfig(scene=scene, model=args.model, store=args.store, split=args.split, episodes=args.episodes, context=args.context,
                         horizon=args.horizon, start=args.start, policy=args.policy, distribution=dist,
                         resolution=resolution, camera=args.camera, seed=args.seed, batch_size=args.batch_size,
                         videos=args.videos, voe=args.voe, adherence=args.adherence, holdout=holdout,
                         steps=args.steps, sampler=args.sampler, context_sigma=args.context_sigma,
                         guidance_actions=args.guidance_actions, guidance_text=args.guidance_text,
                         adherence_rollout_after=args.adherence_rollout_after,
                         adherence_stagger=args.adherence_stagger, mode_steps=args.mode_steps,
                         probes=tuple(x.strip() for x in (args.probes or "").split(",") if x.strip()))
        ev = evaluate(cfg, progress=True)
        js, html = write(ev, out / dist if len(dists) > 1 else out, overwrite=True)
        written.append(js)
        s = ev.figures["model"]["summary"]
        iq = ev.figures["model"]["physics_iq"]["score"]

        def f(est, unit):
            return "n/a" if est["value"] is None else f"{est['value']:.2f}{unit}"

        print(f"{ev.model} on {cfg.scene} ({ev.episodes.distribution}, {len(ev.episodes)} episodes): PSNR@1 {f(s['psnr@1'], ' dB')}, "
              f"position error {f(s['position_px_vs_mujoco'], ' px')}, Physics-IQ {f(iq, '%')}")
        print(f"wrote {js.resolve()}\nwrote {html.resolve()}")
    if len(dists) > 1:
        table = out / "generalisation.md"
        table.write_text(f"# {scene}: generalisation (Kang et al.)\n\n{generalisation_markdown(written)}\n\n"
                         f"## Every metric\n\n{generalisation_all_markdown(written)}\n")
        print(table.read_text())
        print(f"wrote {table.resolve()}")
    return 0

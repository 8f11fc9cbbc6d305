"""Action response (issue 9, `push`, `orbit`): do two action sequences make two futures, as they do in MuJoCo?

Users of video world models report continuous actions being ignored: a model can score well on next-frame PSNR by
drawing the agent where it was. This probe rolls every test episode out twice from the same context: under its own
actions (A) and under their mirror image (B: every action after the context negated, still inside a symmetric
action box). The agents' centres (objects moved by an actuator, `sim.events.actuated_objects`; where the actions
move the camera instead, `orbit`, every object, since each moves on screen with the camera) are read from the frames
by the colour parser (`parse.py`) in MuJoCo's two rollouts (the exact simulator) and in the predictor's two, and the
A–B separations compared step by step.

Per episode (NaN where nothing is checked): `separation_px` (the predictor's A–B distance at the last step),
`separation_error_px` (|predictor's − MuJoCo's| separation at the last step), `response_pass_rate` (checked steps
where that error is within `RESPONSE_TOLERANCE_PX`) and `response_missing` (checked steps where the predictor lost
the agent in either rollout). A step is checked when the parser finds the agent, off the image border, in both of MuJoCo's
frames. Copy-last separates nothing and scores MuJoCo's separation as its error; the exact simulator scores 0.
Over the episodes, `separation_ratio` = the predictor's mean separation at the last step ÷ MuJoCo's (1: the actions
move the agent as far as in MuJoCo; 0: ignored), with a paired bootstrap interval.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from worldsim.errors import ConfigError
from worldsim.eval.paired import Episodes, rollout
from worldsim.eval.parse import parse

RESPONSE_TOLERANCE_PX = 1.0  # at 32 px, as the consistency probes' (scales with the frame width); MuJoCo's
# perturbed take: 0.07 px at the last step; the separations themselves are 2-3 px at 16 frames under random actions
THRESHOLDS = {"response_tolerance_px_at_32": RESPONSE_TOLERANCE_PX, "mirror": "actions after the context negated"}


def agents(scene: str) -> list[int]:
    """Indices of the objects the actions move on screen: the actuated ones, or all of them in a scene whose actions
    move the camera (`consistency.applicable` lists "orbit"); the probe also needs a symmetric action box."""
    from worldsim.eval.consistency import applicable
    from worldsim.sim.events import actuated_objects
    from worldsim.sim.registry import get_scene

    sc = get_scene(scene)
    found = sorted(actuated_objects(sc))
    if not found and "orbit" in applicable(scene):
        found = list(range(len(sc.spec.objects)))
    if not found:
        raise ConfigError(f"the action-response probe needs a scene whose actions move an object or the camera, "
                          f"not {scene!r}", field="--probes")
    lo, hi = sc.model.actuator_ctrlrange.T  # the env's action box (scene_env.SceneEnv.action_space)
    if not np.allclose(lo, -hi):
        raise ConfigError(f"{scene!r}'s action box is not symmetric, so negated actions leave it", field="--probes")
    return found


def mirrored(episodes: Episodes, context: int) -> Episodes:
    """The same episodes with every action after the context negated; the context's own actions stay."""
    actions = episodes.actions.copy()
    actions[:, context - 1:] *= -1
    return dataclasses.replace(episodes, actions=actions)


def separations(frames_a: np.ndarray, frames_b: np.ndarray, colours: np.ndarray, agent: list[int]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(B, H, h, w, 3) frame pairs -> A–B distance of each agent's parsed centre (B, H, N) px, and whether both
    frames show it off the border (B, H, N)."""
    pa, pb = parse(frames_a, colours), parse(frames_b, colours)
    ca, cb = pa.centre[..., agent, :], pb.centre[..., agent, :]  # (B, H, N, 2)
    seen = (pa.pixels[..., agent] > 0) & (pb.pixels[..., agent] > 0) & ~pa.border[..., agent] & ~pb.border[..., agent]
    return np.linalg.norm(ca - cb, axis=-1), seen


def run(scene: str, predictors: dict, episodes: Episodes, *, context: int, horizon: int, seed: int = 0,
        batch_size: int = 16, n_resamples: int = 2000, given: dict[str, np.ndarray] | None = None) -> dict:
    """Every predictor's action response beside the exact simulator's, on `episodes` (the evaluation's own);
    `given`: predictions under the true actions already rolled out with the same seed (name -> (B, H, h, w, 3))."""
    from worldsim.eval.predictor import PerturbedMuJoCo
    from worldsim.eval.stats import bootstrap, bootstrap_mean, nanmean
    from worldsim.sim.registry import get_scene

    agent = agents(scene)
    colours = np.array([o.colour for o in get_scene(scene).spec.objects])
    tol = RESPONSE_TOLERANCE_PX * episodes.frames.shape[3] / 32
    flipped = mirrored(episodes, context)
    exact = PerturbedMuJoCo(scene, 0.0, 0.0, name="mujoco (exact)")
    truth_b = rollout(exact, flipped, context, horizon, seed=seed, batch_size=batch_size).prediction
    truth_a = episodes.frames[:, context:context + horizon]
    sep_true, check = separations(truth_a, truth_b, colours, agent)
    true_last = nanmean(np.where(check[:, -1], sep_true[:, -1], np.nan), -1)  # (B,) MuJoCo's, at the last step
    scores = {}
    for name, p in {"mujoco (exact)": exact, **predictors}.items():
        pred_a = truth_a if p is exact else (given or {}).get(name)
        if pred_a is None:
            pred_a = rollout(p, episodes, context, horizon, seed=seed, batch_size=batch_size).prediction
        pred_b = truth_b if p is exact else rollout(p, flipped, context, horizon, seed=seed,
                                                    batch_size=batch_size).prediction
        sep, _ = separations(pred_a, pred_b, colours, agent)
        err = np.where(check, np.abs(sep - sep_true), np.nan)  # (B, H, N); NaN also where the predictor lost it
        n = check.sum((1, 2))
        figures = {
            "separation_px": nanmean(np.where(check[:, -1], sep[:, -1], np.nan), -1),
            "separation_error_px": nanmean(err[:, -1], -1),
            "response_pass_rate": np.where(n > 0, (err <= tol).sum((1, 2)) / np.maximum(n, 1), np.nan),
            "response_missing": np.where(n > 0, (check & np.isnan(sep)).sum((1, 2)) / np.maximum(n, 1), np.nan),
        }
        scores[name] = {k: bootstrap_mean(v, n_resamples=n_resamples, seed=seed).to_json() for k, v in figures.items()}
        scores[name]["separation_ratio"] = bootstrap(
            lambda a, b: nanmean(a) / nanmean(b), figures["separation_px"], true_last,
            n_resamples=min(n_resamples, 1000), seed=seed).to_json()
    return {"episodes": len(episodes), "checked": int((check.sum((1, 2)) > 0).sum()), "horizon": horizon,
            "agents": [get_scene(scene).spec.objects[k].name for k in agent], "scores": scores}

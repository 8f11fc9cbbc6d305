"""The shipped world models (`worldsim/pretrained/`, issue 9): each loads offline through `worldsim.load`, fits
the size budget, and a short evaluation on fixed fresh episodes stays at or above its floor, so a regression fails
CI. A floor is the figure this same evaluation measured when the weights were shipped, less max(3 standard errors,
10%), and it must still beat copy-last on the same episodes. The published figures (64 test episodes):
docs/results.md."""

from __future__ import annotations

import pytest

import worldsim
from worldsim import pretrained
from worldsim.eval.evaluate import EvalConfig, evaluate

EPISODES = 12  # fresh episodes, seed 0: the evaluation is deterministic, so the floors guard against regressions
# scene -> metric -> (value measured at shipping, its standard error, True when higher is better): the metrics on
# which the model beats copy-last. Measured with
#   cd tests && python -c "from test_pretrained import measure; measure('bounce')"
# bounce (E117, docs/experiments.md): next-frame PSNR (25.9 vs 23.9 here), and PSNR and SSIM over the 16-frame
# horizon, beat copy-last: its frames keep the box right and fade the balls rather than leaving them where they were.
# The centre and velocity errors (balls missing in 8% of the first frames, about half of all) are means over the
# frames where one was found: no floor.
# collide (E120, sampled with the 2 Euler steps its file records): next-frame and 16-frame PSNR, SSIM, the centre and
# the velocity error beat copy-last (37.3 vs 32.6 dB, 32.2 vs 27.4 dB, 0.960 vs 0.895, 0.91 vs 3.34 px, 0.28 vs 0.39
# px/frame against the state; issue 9's velocity target is met at 2 steps); no ball missing in the first frames.
# occlusion (E122, sampled with the 4 Euler steps its file records, as E35's since E83): next-frame and 16-frame
# PSNR, SSIM, the centre and the velocity error all beat copy-last (46.4 vs 29.8 dB, 37.5 vs 24.9 dB, 0.985 vs 0.935,
# 0.47 vs 4.16 px, 0.42 vs 0.50 px/frame); no ball missing in the first frames.
# orbit (E37): next-frame and 16-frame PSNR and SSIM beat copy-last (24.0 vs 22.9 dB, 18.7 vs 17.7 dB, 0.696 vs
# 0.656); its objects sit as far from MuJoCo's as a still frame's (0.96 vs 0.89 px): no floor on the centre error.
# parabola (E142, anti-aliased frames since E130, half its last rounds' clips mirrored, sampled with the 2 Euler
# steps its file records): next-frame and 16-frame PSNR, SSIM, the centre and the velocity error beat copy-last (39.7
# vs 31.4 dB, 29.8 vs 24.4 dB, 0.968 vs 0.933, 1.63 vs 5.85 px, 0.53 vs 0.96 px/frame); no ball missing. (E136:
# 38.7 dB, 1.68 px; E131: 37.3 dB, 1.82 px; E68 on the aliased frames: 31.2 vs 28.4 dB.)
# push (E62): next-frame and 16-frame PSNR, SSIM, the centre and the velocity error beat copy-last (36.6 vs 31.4 dB,
# 32.7 vs 28.0 dB, 0.983 vs 0.966, 0.48 vs 1.64 px, 0.21 vs 0.36 px/frame). It also answers its actions (RESPONSE).
SHIPPED = {
    "bounce": {"psnr@1": (25.9491, 0.6059, True), "psnr": (22.6580, 0.3251, True), "ssim": (0.8903, 0.0084, True)},
    "collide": {"psnr@1": (37.2541, 0.4293, True), "psnr": (32.1855, 0.4720, True), "ssim": (0.9598, 0.0036, True),
                "position_px_vs_mujoco": (0.9076, 0.0967, False), "velocity_px_vs_state": (0.2829, 0.0146, False)},
    "occlusion": {"psnr@1": (46.3844, 3.2002, True), "psnr": (37.5476, 2.0910, True), "ssim": (0.9853, 0.0023, True),
                  "position_px_vs_mujoco": (0.4652, 0.0460, False), "velocity_px_vs_mujoco": (0.4197, 0.0305, False)},
    "orbit": {"psnr@1": (23.9933, 0.5722, True), "psnr": (18.6694, 0.3481, True), "ssim": (0.6955, 0.0164, True)},
    "parabola": {"psnr@1": (39.6708, 0.7942, True), "psnr": (29.7882, 1.1428, True), "ssim": (0.9679, 0.0047, True),
                 "position_px_vs_mujoco": (1.6269, 0.2336, False), "velocity_px_vs_mujoco": (0.5320, 0.0408, False)},
    "push": {"psnr@1": (36.6012, 1.0830, True), "psnr": (32.6731, 0.6493, True), "ssim": (0.9834, 0.0026, True),
             "position_px_vs_mujoco": (0.4849, 0.1170, False), "velocity_px_vs_mujoco": (0.2112, 0.0208, False)},
}
# Action-conditioned scenes: under two mirrored action sequences from one start (`--probes response`,
# docs/metrics.md) the shipped model's agents must part by at least the separation (px at step 16) measured at
# shipping less its margin, and further than copy-last's (which never parts them). Measured by `measure()`.
RESPONSE = {"push": (9.5029, 1.2419)}  # MuJoCo parts them 16.8 px on the published test split, the model 15.4
# The shipped occlusion model (E122) also connects two clips of one episode and extends a clip backward (`--probes
# modes`, docs/results.md, "Generation modes"): the share of checks with the balls within 2 px of MuJoCo's, on
# MODE_EPISODES fresh windows, measured at shipping with its standard error (`measure_modes()`); each must also beat
# its naive reference (holding the nearest given frame; repeating the first given frame). The preview (E87: the
# render keeps its draft) has no naive reference: the share of objects within 1 draft px between draft and render
# must stay above its floor (before E87 the free render of a 4-step draft passed 36% on occlusion, 7% on E81's
# collide). The shipped collide model (E120) extends backward as a rollout in reversed time; its windows start where
# the published probe's do (frame 0: from frame 14, where the balls have met and bounce off the walls, its forward
# rollouts beat copy-last's centre error by half a pixel but lose 9% of the balls, docs/results.md).
MODE_EPISODES = 8
MODE_START = {"occlusion": 14, "collide": 0}  # where occlusion's balls cross; collide's published windows
MODES = {("occlusion", "connect"): (0.8069, 0.0513, "nearest given frame"),
         ("occlusion", "extend_backward"): (0.6227, 0.1307, "copy-first (the first given frame)"),
         ("occlusion", "preview"): (0.8909, 0.0300, None),
         ("collide", "extend_backward"): (0.6133, 0.0589, "copy-first (the first given frame)"),
         ("collide", "preview"): (0.9733, 0.0069, None)}
# The shipped collide model (E120) also carries its balls across cuts between its two cameras (`--probes consistency`,
# docs/results.md, "Consistency probes"): on CUT_EPISODES fresh multi-shot episodes, the error (px) between each ball
# after a cut and where the previous shot left it, and the share of checks where it lost the ball, measured at
# shipping with their standard errors (`measure_cuts()`). The error must stay under its ceiling and under copy-last's
# (which never cuts), and the lost share under its ceiling (copy-last loses none: that is not a bound).
CUT_EPISODES = 12
CUTS = {"collide": {"cut_error_px": (0.7099, 0.0548), "cut_missing": (0.0417, 0.0319)}}  # copy-last: 1.46 px, 0
# The shipped collide model (E120) reads its captions' numbers: text-only samples of ADHERENCE_PROMPTS prompts of its
# fixed set (`worldsim evaluate --adherence`, caption guidance 4 as published) must pass at least the share of checks
# measured at shipping less its margin (`measure_adherence()`), both as whole clips (`--adherence-rollout-after 32`)
# and as the file samples text by default (None): its first 8 frames denoised together and the rest rolled out
# (`worldsim export --rollout-after 8`), where it meets issue 9's 90%. E42, shipped before E81 and blind to its
# captions, scored 66.0% here as whole clips, under that floor (74.0). The shipped occlusion (E122) and bounce (E117)
# models are held to the same test as their files sample text (checks that read motion only from tracks that do not
# jump, E106): occlusion 92.1% (floor 81.6) with the pyramid its file records (`worldsim export --stagger 2`, E126)
# and the direction check that lets no gravity pull its x-sliding balls (80.0 with neither; E103, shipped before it,
# 86.3 on these 12 prompts with the old check), bounce 85.8% (floor 74.1; E112, shipped before it, 76.9; E105 68.9;
# E14 31.4% sampled so, 53.5 as whole clips).
ADHERENCE_PROMPTS = 12
# scene -> {rollout_after: (% of checks passed, standard error)} at --guidance-text 4; None: the file's own record
ADHERENCE = {"bounce": {None: (85.8333, 3.9045)}, "collide": {32: (88.8889, 4.2694), None: (100.0, 0.0)},
             "occlusion": {None: (92.0833, 3.5103)}}
# what each file's own t2v sampling is (`sampler.rollout_after`)
RECORDED_ROLLOUT_AFTER = {"bounce": 8, "collide": 8, "occlusion": 8}
# and how many steps each of those frames settles behind the one before (`sampler.stagger`; E126)
RECORDED_STAGGER = {"bounce": 0, "collide": 0, "occlusion": 2}
MIRRORED_RIGHT_WAY = 0.9  # share of mirrored parabola launches sent the right way (E142: all 64 test episodes)
MB = 2**20  # the budget in MiB, as `ls -lh` and `du -h` print sizes: push's 6,007,960 bytes are 5.73 (decisions.md)


def floor(value: float, se: float, higher_is_better: bool) -> float:
    margin = max(3 * se, 0.1 * abs(value))
    return value - margin if higher_is_better else value + margin


def short_evaluation(scene: str) -> dict:
    """At the model's first training resolution (32 px for every shipped scene), with the Euler steps per frame its
    file records (collide: 2, E81 and since; occlusion: 4; the others none, so 3) and the action-response probe for
    the scenes in RESPONSE."""
    height, width = worldsim.load(scene).scene.resolutions[0]
    assert height == width, "EvalConfig scores square frames"
    cfg = EvalConfig(scene=scene, model=str(pretrained.path(scene)), episodes=EPISODES, horizon=16, context=4,
                     resolution=height, baselines=("copy-last",), bootstrap=200, videos=0,
                     probes=("response",) if scene in RESPONSE else ())
    return evaluate(cfg).figures


def assert_above_floors(label: str, figures: dict, floors: dict) -> None:
    """Each figure at or above its floor (below its ceiling, for errors) and better than copy-last's."""
    for key, (value, se, higher) in floors.items():
        got = figures["model"]["summary"][key]["value"]
        base = figures["scores"]["copy-last"]["summary"][key]["value"]
        assert got is not None, f"{label} {key}: the model's objects were not found"
        bound = floor(value, se, higher)
        if higher:
            assert got >= bound and got > base, (label, key, got, bound, base)
        else:
            assert got <= bound and got < base, (label, key, got, bound, base)


def standard_error(est: dict) -> float:
    """The standard error behind a bootstrap estimate's 95% interval (its width / 2 x 1.96)."""
    lo, hi = est["ci95"]
    return (hi - lo) / 3.92


def measure(scene: str) -> None:
    """Print this test's figures for `scene` with their standard errors (to fill in `SHIPPED`)."""
    figures = short_evaluation(scene)
    for key in ("psnr@1", "psnr", "ssim", "position_px_vs_mujoco", "velocity_px_vs_mujoco", "velocity_px_vs_state",
                "missing@1"):
        est = figures["model"]["summary"][key]
        print(f"{key}: value {est['value']:.4f} se {standard_error(est):.4f} "
              f"copy-last {figures['scores']['copy-last']['summary'][key]['value']:.4f}")
    if scene in RESPONSE:
        est = response_scores(figures)["model"]["separation_px"]
        print(f"separation_px: value {est['value']:.4f} se {standard_error(est):.4f}")


def response_scores(figures: dict) -> dict:
    """The response probe's scores keyed "model" (the shipped weights), "copy-last" and "mujoco (exact)"."""
    model = figures["predictor"]["name"]
    return {("model" if name == model else name): s for name, s in figures["response"]["scores"].items()}


def mode_evaluation(scene: str) -> dict:
    """The mode probes on MODE_EPISODES windows of 4 + 16 frames from the scene's MODE_START."""
    from worldsim.eval import modes

    which = tuple(sorted(m for s, m in MODES if s == scene))
    return modes.run(scene, worldsim.load(scene), name="shipped", n=MODE_EPISODES, given=4, made=16,
                     start=MODE_START[scene], n_resamples=200, which=which)


def measure_modes(scene: str = "occlusion") -> None:
    """Print each mode's pass rate and its standard error (to fill in `MODES` when shipping)."""
    for mode, out in mode_evaluation(scene).items():
        est = out["scores"].get("shipped", {}).get("pass_rate")
        if est is not None:
            print(f"{mode} pass rate: value {est['value']:.4f} se {standard_error(est):.4f}")


def cut_evaluation(scene: str) -> dict:
    """The cut-consistency probe on CUT_EPISODES multi-shot episodes (4 context frames, 16 predicted; cuts at steps
    4 and 10), for the shipped model and copy-last: {predictor: {figure: estimate}}."""
    from worldsim.eval import consistency
    from worldsim.eval.predictor import baseline
    from worldsim.eval.world_model import WorldModelPredictor

    predictors = {"shipped": WorldModelPredictor.load(pretrained.path(scene)), "copy-last": baseline("copy-last", scene)}
    return consistency.run(scene, predictors, n=CUT_EPISODES, context=4, horizon=16, n_resamples=200)["cuts"]["scores"]


def measure_cuts(scene: str = "collide") -> None:
    """Print the shipped model's cut figures with their standard errors (to fill in `CUTS` when shipping)."""
    scores = cut_evaluation(scene)
    for key, est in scores["shipped"].items():
        print(f"{key}: value {est['value']:.4f} se {standard_error(est):.4f} "
              f"copy-last {scores['copy-last'][key]['value']:.4f}")


def adherence_scores(scene: str, rollout_after: int | None = None) -> tuple[dict, tuple[int | None, int]]:
    """Prompt adherence of the shipped model's text-only samples, guided 4 on the caption, rolled out after
    `rollout_after` frames (32: whole; None: the file's own record): {predictor: estimate}, and the K (None: whole
    clips) and stagger they were made with."""
    from worldsim.eval import adherence
    from worldsim.eval.world_model import WorldModelPredictor

    predictor = WorldModelPredictor.load(pretrained.path(scene))
    out = adherence.run(scene, predictor, n=ADHERENCE_PROMPTS, guidance_text=4.0, n_resamples=200,
                        rollout_after=rollout_after)
    return ({("shipped" if name == predictor.name else name): est for name, est in out["scores"].items()},
            (out["rollout_after"], out["stagger"]))


def measure_adherence(scene: str = "collide") -> None:
    """Print the shipped model's adherence and its standard error, per sampling in `ADHERENCE` (to fill it in)."""
    for rollout_after in ADHERENCE[scene]:
        est = adherence_scores(scene, rollout_after)[0]["shipped"]
        print(f"adherence (rollout after {rollout_after}): value {est['value']:.4f} se {standard_error(est):.4f}")


@pytest.mark.parametrize("scene,rollout_after", [(s, k) for s in sorted(ADHERENCE) for k in ADHERENCE[s]])
def test_shipped_model_follows_its_prompts(scene, rollout_after):
    scores, (made_after, stagger) = adherence_scores(scene, rollout_after)
    assert made_after == (RECORDED_ROLLOUT_AFTER[scene] if rollout_after is None else None)  # users get the floor's
    assert stagger == RECORDED_STAGGER[scene]
    assert scores["mujoco (oracle)"]["value"] == 100.0  # the checks themselves pass MuJoCo's video of each prompt
    got, bound = scores["shipped"]["value"], floor(*ADHERENCE[scene][rollout_after], True)
    assert got >= bound, (scene, rollout_after, got, bound)


@pytest.mark.parametrize("scene", sorted(CUTS))
def test_shipped_model_keeps_its_objects_across_camera_cuts(scene):
    scores = cut_evaluation(scene)
    got = {key: scores["shipped"][key]["value"] for key in CUTS[scene]}
    bounds = {key: floor(value, se, False) for key, (value, se) in CUTS[scene].items()}
    assert all(got[key] <= bounds[key] for key in got), (scene, got, bounds)
    assert got["cut_error_px"] < scores["copy-last"]["cut_error_px"]["value"], (scene, got, scores["copy-last"])


@pytest.fixture(scope="module")
def mode_scores() -> dict:
    return {scene: mode_evaluation(scene) for scene in sorted({s for s, _ in MODES})}


@pytest.mark.parametrize("scene,mode", sorted(MODES))
def test_shipped_model_generation_modes_stay_above_their_floors(scene, mode, mode_scores):
    value, se, reference = MODES[(scene, mode)]
    scores = mode_scores[scene][mode]["scores"]
    got = scores["shipped"]["pass_rate"]["value"]
    naive = scores[reference]["pass_rate"]["value"] if reference else -1.0
    bound = floor(value, se, True)
    assert got >= bound and got > naive, (scene, mode, got, bound, naive)


def test_every_scene_with_figures_is_shipped_and_within_budget():
    assert sorted(SHIPPED) == pretrained.available()
    sizes = {s: pretrained.path(s).stat().st_size for s in pretrained.available()}
    assert all(v <= 6 * MB for v in sizes.values()), sizes
    assert sum(sizes.values()) <= 40 * MB


@pytest.mark.parametrize("scene", sorted(SHIPPED))
def test_shipped_model_loads_offline_and_stays_above_its_floor(scene):
    model = worldsim.load(scene)
    assert model.scene.name == scene
    training = model.meta["training"]
    assert training["config"] and training["steps"] > 0  # the config that retrains it travels with the weights
    figures = short_evaluation(scene)
    assert figures["predictor"]["rollout"]["steps"] == model.steps  # sampled as its file says (3 where it says none)
    if scene in RESPONSE:  # mirrored action sequences must part its agents, further than copy-last's (never)
        value, se = RESPONSE[scene]
        scores = response_scores(figures)
        got, base = scores["model"]["separation_px"]["value"], scores["copy-last"]["separation_px"]["value"]
        assert got >= floor(value, se, True) and got > base, (scene, "separation_px", got, floor(value, se, True), base)
    assert_above_floors(scene, figures, SHIPPED[scene])


def test_shipped_parabola_reads_which_way_its_ball_goes_from_the_frames(tmp_path):
    """Every recorded `parabola` ball is launched from the left, so a model may send each ball right for where it is;
    the shipped one (E142, trained on clips mirrored left to right with nothing telling it so, docs/experiments.md
    E139-E142) reads the way from its context: fresh episodes flipped left to right, launched from the right as no
    recorded one is, must have at least MIRRORED_RIGHT_WAY of their balls sent the right way over frames 3-8 and a
    16-frame centre error under copy-last's. E136, shipped before it, sent every such ball the wrong way."""
    import numpy as np

    from worldsim.data.recorder import RecordConfig, record
    from worldsim.data.store import open_store
    from worldsim.eval.parse import parse
    from worldsim.rollout.autoregressive import rollout
    from worldsim.sim.registry import get_scene

    store = tmp_path / "parabola32.zarr"
    record(RecordConfig(store=str(store), scene="parabola", split="test", episodes=EPISODES, frames=20, resolution=32,
                        policy="zero", seed=0, progress=False))
    opened = open_store(store)
    frames = np.stack([opened.episode("test", i, ["frames"])["frames"] for i in range(EPISODES)])  # (B, 20, H, W, 3)
    frames = np.ascontiguousarray(frames[:, :, :, ::-1])                                            # launched from the right
    model = worldsim.load("parabola")
    made = rollout(model, frames[:, :4], horizon=16)                                                # (B, 16, H, W, 3)
    colour = np.array(get_scene("parabola").spec.objects[0].colour)[None]
    real = parse(frames, colour).centre[:, :, 0]                                                    # (B, 20, 2) x, y px
    ours = parse(np.concatenate([frames[:, :4], made], 1), colour).centre[:, :, 0]
    way_real, way_ours = np.sign(real[:, 8, 0] - real[:, 3, 0]), np.sign(ours[:, 8, 0] - ours[:, 3, 0])
    assert np.isfinite(ours[:, 4:]).all(), "the model lost its ball"
    assert (way_real < 0).all()  # the mirrored balls all go left
    assert np.mean(way_ours == way_real) >= MIRRORED_RIGHT_WAY, (way_ours, way_real)
    error = np.linalg.norm(ours[:, 4:] - real[:, 4:], axis=-1).mean()
    still = np.linalg.norm(real[:, 3:4] - real[:, 4:], axis=-1).mean()
    assert error < still, (error, still)

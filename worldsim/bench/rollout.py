"""`worldsim bench rollout`: autoregressive world-model rollout speed and memory, beside their references.

- frames/s of a cached rollout (`worldsim.rollout.Rollout`, default sampler: 3 Euler steps, the last one writing
  the KV cache) with the `tiny` preset, batch 1 and 16, at 32x32 and 64x64, context window 7 frames (a training
  clip of 8); frames/s counts frames of all rollouts of the batch;
- the FLOP-bound limit for the same work: analytic FLOPs per generated frame (`worldsim.models.flops`: the new
  frame's tokens through every weight, attention over the window) over this machine's measured fp32 matmul FLOP/s
  (`worldsim.bench.model.matmul_flops`), i.e. what the CPU could do if the model ran at matmul speed;
- MuJoCo's own step+render frames/s (`SceneEnv`, push, no segmentation renders) at both sizes;
- a preview's parts (`generate(mode="preview")`): the 16-px draft and the 32-px render that keeps it, in seconds,
  beside a 32-px t2v of the render's steps (the draft is what a user waits for before deciding to render);
- resident memory (psutil RSS) at step 1,000 and 10,000 of one long rollout (debug preset, 16x16, 2 steps per frame,
  window 3: the sliding window must keep it flat; goal: growth < 50 MB). `--quick`: steps 100 and 1,000.
- re-emergence after occlusion vs the context window (`worldsim.rollout.reemergence_vs_window`), when trained
  `occlusion` weights are named by the environment variable `WORLDSIM_BENCH_OCCLUSION_WEIGHTS` (an untrained
  model's figure would mean nothing; the row is then left out with a note).
Goal (issue 7): >= 10 frames/s at 64x64, batch 1.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from worldsim.bench.report import BenchReport

SCENE = {"name": "push", "frame_skip": 20, "fps": 25.0, "cameras": ["top", "angled"], "action_dim": 2,
         "action_low": [-0.6, -0.6], "action_high": [0.6, 0.6], "param_names": [], "windows": [8]}
GOAL_FPS = 10.0
GOAL_GROWTH_MB = 50.0


def _model(preset: str, *resolutions: int):
    """An untrained `preset` network whose metadata says it was trained at these square resolutions."""
    from worldsim.models import build_model
    from worldsim.rollout.model import WorldModel

    torch.manual_seed(0)
    net = build_model(preset, action_dim=2, camera_classes=2)
    meta = {"scene": {**SCENE, "resolution": [[r, r] for r in resolutions]}, "loss": {"edm": {}},
            "model": {"preset": preset}}
    return WorldModel(net, meta, source=f"<{preset}>")


def frame_flops(model, res: int, window: int, steps: int) -> float:
    """Analytic FLOPs of one generated frame of one rollout: `steps` forwards of a single new frame whose tokens
    attend to themselves and `window` cached frames (matmuls counted as in `flops.count`)."""
    from worldsim.models import flops

    net = model.net
    f = flops.count(net, 1, (1, res, res))
    S = (res // net.cfg.patch[1]) * (res // net.cfg.patch[2])
    attn = 4.0 * net.cfg.width * S * (window + 1) * S * net.cfg.depth
    return steps * (f.matmul + attn)


def rollout_fps(model, res: int, batch: int, frames: int, window: int = 7) -> float:
    from worldsim.rollout.autoregressive import Rollout, RolloutConfig

    ctx = np.random.default_rng(0).integers(0, 255, (batch, window, res, res, 3), dtype=np.uint8)
    r = Rollout(model, ctx, config=RolloutConfig(window=window), seed=0)
    zero = np.zeros((batch, 2), np.float32)
    r.step(zero)  # warm-up
    t = time.perf_counter()
    for _ in range(frames):
        r.step(zero)
    return batch * frames / (time.perf_counter() - t)


def mujoco_fps(res: int, frames: int) -> float:
    from worldsim.sim.scene_env import SceneEnv

    env = SceneEnv("push", resolution=res, visibility=False)
    env.reset(seed=0)
    zero = np.zeros(2, np.float32)
    t = time.perf_counter()
    for i in range(frames):
        if env.step(zero)[3]:
            env.reset(seed=i)
    fps = frames / (time.perf_counter() - t)
    env.close()
    return fps


def preview_seconds(batch: int, frames: int, steps: int = 8) -> dict[str, float]:
    """Seconds of `generate`'s preview parts with the `tiny` preset trained (by its metadata) at 32 and 16 px: the
    16-px draft (`PREVIEW_STEPS` x `steps`), the 32-px render that keeps it (SDEdit from σ = 1), and a 32-px t2v
    of `steps` (what the preview stands in for)."""
    from worldsim.rollout.generate import PREVIEW_STEPS, generate

    model = _model("tiny", 32, 16)

    def timed(**kw) -> tuple[float, np.ndarray]:
        t = time.perf_counter()
        out = generate(model, batch=batch, **kw).frames
        return time.perf_counter() - t, out

    generate(model, "t2v", frames=2, resolution=16, steps=1)  # warm-up
    draft_s, draft = timed(mode="t2v", frames=frames, resolution=16, steps=PREVIEW_STEPS * steps)
    up = np.repeat(np.repeat(draft, 2, 2), 2, 3)
    render_s, _ = timed(mode="edit", clip=up, resolution=32, steps=steps, sigma_start=1.0, keep_scale=2)
    full_s, _ = timed(mode="t2v", frames=frames, resolution=32, steps=steps)
    return {"draft": draft_s, "render": render_s, "t2v": full_s}


def memory_growth(marks: tuple[int, int]) -> tuple[float, float]:
    """RSS (MB) after marks[0] and marks[1] steps of one long rollout."""
    import gc

    import psutil

    from worldsim.rollout.autoregressive import Rollout, RolloutConfig

    model = _model("debug", 16)
    proc = psutil.Process()
    ctx = np.zeros((1, 3, 16, 16, 3), np.uint8)
    r = Rollout(model, ctx, config=RolloutConfig(steps=2, window=3), seed=0)
    zero = np.zeros((1, 2), np.float32)
    out = []
    for t in range(1, marks[1] + 1):
        r.step(zero)
        if t in marks:
            gc.collect()
            out.append(proc.memory_info().rss / 2**20)
    return out[0], out[1]


def run(quick: bool = False, threads: int = 1) -> BenchReport:
    """`threads`: torch threads for the whole bench (1: on this 2-core machine shared with other work, two threads
    contend and ran 3-10x slower than one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(quick)
    finally:
        torch.set_num_threads(before)


def _run(quick: bool) -> BenchReport:
    from worldsim.bench.model import matmul_flops
    from worldsim.rollout.generate import PREVIEW_STEPS

    report = BenchReport("rollout")
    frames = {1: 8 if quick else 30, 16: 2 if quick else 6}
    peak = matmul_flops(torch.device("cpu"), torch.float32)
    for res in (32, 64):
        model = _model("tiny", res)
        for batch in (1, 16):
            fps = rollout_fps(model, res, batch, frames[batch])
            limit = peak / frame_flops(model, res, 7, 3)
            ref = "goal >= 10 frames/s" if (res, batch) == (64, 1) else "FLOP-bound limit"
            report.add(f"tiny {res}x{res} batch {batch} rollout", fps, "frames/s", ref,
                       GOAL_FPS if (res, batch) == (64, 1) else limit)
            report.add(f"tiny {res}x{res} batch {batch} FLOP-bound limit", limit, "frames/s",
                       f"matmul {peak / 1e9:.0f} GFLOP/s")
        report.add(f"MuJoCo push step+render {res}x{res}", mujoco_fps(res, 50 if quick else 300), "frames/s")
    batch, clip = (2, 8) if quick else (16, 16)
    secs = preview_seconds(batch, clip)
    report.add(f"preview: 16x16 draft ({PREVIEW_STEPS * 8} steps), batch {batch} x {clip} frames", secs["draft"], "s",
               "32x32 t2v, 8 steps", secs["t2v"])
    report.add(f"preview: 32x32 render keeping the draft (8 steps from sigma 1), batch {batch}", secs["render"], "s",
               "32x32 t2v, 8 steps", secs["t2v"])
    marks = (100, 1000) if quick else (1000, 10000)
    a, b = memory_growth(marks)
    report.add(f"RSS at rollout step {marks[0]}", a, "MB")
    report.add(f"RSS at rollout step {marks[1]}", b, "MB", f"step {marks[0]} + {GOAL_GROWTH_MB:.0f} MB goal",
               a + GOAL_GROWTH_MB)
    report.add("RSS growth", b - a, "MB", "goal", GOAL_GROWTH_MB)
    occ = os.environ.get("WORLDSIM_BENCH_OCCLUSION_WEIGHTS")
    if occ:
        from worldsim.rollout import WorldModel, reemergence_vs_window

        windows = (1, 2, 4) if quick else (1, 2, 4, 8, 16)
        out = reemergence_vs_window(WorldModel.load(occ), list(windows), episodes=2 if quick else 16,
                                    distribution="ood:occluder_width")
        for w, figs in out.items():
            report.add(f"re-emergence rate, window {w} (occluder ood)", figs["reemergence_rate"], "fraction")
    else:
        report.notes.append("re-emergence vs window: set WORLDSIM_BENCH_OCCLUSION_WEIGHTS to trained occlusion weights")
    report.notes.append(f"torch threads {torch.get_num_threads()}; tiny preset, 3 Euler steps/frame (fused cache "
                        "write), window 7; FLOP-bound = matmul FLOP/s / analytic FLOPs per frame")
    return report

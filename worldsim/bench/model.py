"""`worldsim bench model`: per preset and resolution, a diffusion training step of the video DiT (forward,
backward, AdamW) timed, its analytic FLOPs (`worldsim.models.flops`), and model FLOPs utilisation against a
plain matmul's FLOP/s measured in the same run (fp32 on CPU, where bf16 autocast was 8-13x slower; bf16 on a GPU).
Also the rollout step: one new frame with a cached context beside the same frame with its context recomputed."""

from __future__ import annotations

import os
import statistics
import time

import torch

from worldsim import diffusion
from worldsim.bench.report import BenchReport
from worldsim.models import PRESETS, build_model, flops

# (preset, batch, (T, H, W)) timed on each device kind; CPU sizes keep a full run near a minute.
CPU_RUNS = [("debug", 8, (4, 16, 16)), ("tiny", 8, (8, 32, 32)), ("tiny", 2, (8, 64, 64))]
GPU_RUNS = [("tiny", 16, (8, 64, 64)), ("S", 8, (16, 128, 128)), ("B", 4, (16, 128, 128)), ("L", 2, (16, 128, 128))]
MFU_GOAL = 0.5  # tiny on CPU (issue 5)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops(device: torch.device, dtype: torch.dtype, n: int = 1024, seconds: float = 0.5) -> float:
    """FLOP/s of an n x n @ n x n matmul (best of a few timed batches): the achievable peak MFU is measured
    against."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    best, reps, spent = 0.0, 4, 0.0
    while spent < seconds:
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        _sync(device)
        dt = time.perf_counter() - t
        spent += dt
        best = max(best, 2.0 * n ** 3 * reps / dt)
    return best


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def trainer(preset: str, batch: int, size: tuple[int, int, int], device: torch.device):
    """A fresh model and a closure running one training step on it (EDM loss with a noise level per frame,
    backward, AdamW) that returns its wall time in seconds."""
    torch.manual_seed(0)
    model = build_model(preset).to(device).train()
    den = diffusion.EDMDenoiser(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(batch, size[0], model.cfg.channels, size[1], size[2], device=device) * 2 - 1
    g = torch.Generator().manual_seed(0)

    def step() -> float:
        _sync(device)
        t = time.perf_counter()
        with _autocast(device):
            loss = diffusion.loss(den, x, None, generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        return time.perf_counter() - t

    return model, step


def timed_pairs(step, device: torch.device, dtype: torch.dtype, steps: int,
                warmup: int = 1) -> list[tuple[float, float]]:
    """(step seconds, matmul FLOP/s measured just before it) for each timed step: on a shared machine the load
    changes from second to second, so each step is set against a reference taken under the same load."""
    for _ in range(warmup):
        step()
    return [(lambda peak: (step(), peak))(matmul_flops(device, dtype, seconds=0.2)) for _ in range(steps)]


@torch.no_grad()
def rollout_fps(model, size: tuple[int, int, int], context: int, device: torch.device,
                reps: int) -> tuple[float, float]:
    """Forwards per second for one new frame: with the context's keys and values cached, and recomputing the
    context (what a model without a cache must do each step)."""
    model.eval()
    T, H, W = size
    x = torch.rand(1, context + 1, model.cfg.channels, H, W, device=device)
    s = torch.zeros(1, context + 1, device=device)
    cache = model.new_cache()
    with _autocast(device):
        model(x[:, :context], s[:, :context], cache=cache, write_cache=True)
    out = []
    for cached in (True, False):
        _sync(device)
        t = time.perf_counter()
        for _ in range(reps):
            with _autocast(device):
                if cached:
                    model(x[:, context:], s[:, context:], cache=cache)
                else:
                    model(x, s)
        _sync(device)
        out.append(reps / (time.perf_counter() - t))
    model.train()
    return out[0], out[1]


def run(quick: bool = False) -> BenchReport:
    report = BenchReport("model")
    load_before = os.getloadavg()[0]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    kind = "bf16 autocast" if device.type == "cuda" else "fp32"
    steps = 2 if quick else 5
    for name, preset in PRESETS.items():  # sizes of every preset, analytic (no weights allocated)
        with torch.device("meta"):
            m = build_model(name)
        T, H, W = preset.size
        report.add(f"{name} parameters", sum(p.numel() for p in m.parameters()) / 1e6, "M")
        report.add(f"{name} forward FLOPs/frame at {T}x{H}x{W}", flops.per_frame(m, preset.size) / 1e9, "GFLOP")
    for name, batch, size in (GPU_RUNS if device.type == "cuda" else CPU_RUNS):
        if quick and name == "tiny" and size[1] > 32:
            size = (4, size[1], size[2])
        T, H, W = size
        tag = f"{name} {H}px B{batch}xT{T}"
        model, train_step = trainer(name, batch, size, device)
        pairs = timed_pairs(train_step, device, dtype, steps)
        f = flops.count(model, batch, size)
        step = statistics.median(t for t, _ in pairs)
        peak = statistics.median(p for _, p in pairs)
        mfu = statistics.median(f.train / t / p for t, p in pairs)
        pt, ph, pw = model.cfg.patch
        tokens = batch * (T // pt) * (H // ph) * (W // pw)
        report.add(f"{tag} train step", step, "s")
        report.add(f"{tag} training tokens/s", tokens / step, "tokens/s")
        report.add(f"{tag} FLOPs/step", f.train / 1e9, "GFLOP")
        report.add(f"{tag} attention share of FLOPs", 100 * f.attention / f.forward, "%")
        report.add(f"{tag} model FLOP/s", f.train / step / 1e9, "GFLOP/s", f"{kind} matmul, same run", peak / 1e9)
        report.add(f"{tag} MFU", 100 * mfu, "%", "goal (tiny on CPU)" if name == "tiny" else "", 100 * MFU_GOAL
                   if name == "tiny" else None)
        if name == "tiny" and H == 64:
            cached, full = rollout_fps(model, (T, H, W), 4, device, 3 if quick else 10)
            report.add(f"{tag[:-len(f' B{batch}xT{T}')]} one-frame forward, 4-frame context cached", cached,
                       "frames/s", "context recomputed", full)
        del model
    report.notes.append(f"1-min load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on "
                        f"{os.cpu_count()} cores (other work on the machine slows the step more than the matmul)")
    report.notes.append(f"device {device}; {kind}; {torch.get_num_threads()} threads; step = EDM loss with a noise "
                        "level per frame + backward + AdamW; FLOPs analytic (docs/model.md), MFU = model FLOP/s "
                        "over the matmul FLOP/s measured before each step (medians over steps)")
    return report

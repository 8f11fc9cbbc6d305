"""Pictures of the noise plans (`worldsim.diffusion.plans`): each generation mode's `(steps + 1, frames)` matrix of
noise levels as a heat map, so docs/concepts.md can show at a glance which frames are given (a white column,
level 0) and how the others are denoised. `save_all(folder)` writes one PNG per mode plus an overview."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from worldsim.diffusion import plans as P

STEPS, FRAMES, CONTEXT = 12, 10, 3


def examples(steps: int = STEPS, frames: int = FRAMES, context: int = CONTEXT) -> dict[str, tuple[np.ndarray, str]]:
    """mode -> (plan, one-line caption) for every mode in `plans.MODES`, at a small illustrative size."""
    out = {
        "t2v": (P.t2v(steps, frames), "text/action to video: every frame from full noise"),
        "i2v": (P.i2v(steps, frames), "image to video: frame 0 given"),
        "extend": (P.extend(steps, frames, context), f"extend forward: the first {context} frames given"),
        "extend backward": (P.extend(steps, frames, context, "backward"), f"extend backward: the last {context} given"),
        "connect": (P.connect(steps, frames, 2, 2), "connect: 2 frames given at each end"),
        "loop": (P.loop(steps, frames), "loop: all generated; the last frame tied to frame 0"),
        "autoregressive": (P.autoregressive(steps, frames, context), f"one rollout window: {context} context frames"),
        "edit": (P.edit(steps, frames), "edit (SDEdit): start from a noised clip at sigma 2"),
        "preview": (P.preview(steps, frames), "preview: a short plan for a low-resolution draft"),
    }
    missing = set(P.MODES) - {k.split()[0] for k in out}
    assert not missing, f"modes without a picture: {missing}"
    return {k: (np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v), c) for k, (v, c) in out.items()}


def draw(ax, plan: np.ndarray, title: str, caption: str = "") -> None:
    """One plan on `ax`: rows the sampler's steps (top: start), columns the frames, colour log10 of the level."""
    level = np.log10(np.maximum(plan, 1e-3))
    ax.imshow(np.where(plan > 0, level, np.nan), cmap="viridis", vmin=-3, vmax=np.log10(80), aspect="auto")
    ax.set_title(title if not caption else f"{title}\n{caption}", fontsize=8)
    ax.set_xlabel("frame", fontsize=7)
    ax.set_ylabel("step", fontsize=7)
    ax.tick_params(labelsize=6)


def save_all(folder: str | Path) -> list[Path]:
    """Write `plan_<mode>.png` for every mode and `plans.png` (all of them) into `folder`; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ex = examples()
    paths = []
    for name, (plan, caption) in ex.items():
        fig, ax = plt.subplots(figsize=(3.2, 2.8), dpi=100)
        draw(ax, plan, name, caption)
        fig.tight_layout()
        p = folder / f"plan_{name.replace(' ', '_')}.png"
        fig.savefig(p, metadata={"Software": None})
        plt.close(fig)
        paths.append(p)
    fig, axes = plt.subplots(3, 3, figsize=(10, 8.5), dpi=100)
    for ax, (name, (plan, caption)) in zip(axes.flat, ex.items()):
        draw(ax, plan, name, caption)
    fig.suptitle("noise plans: rows = sampler steps (top first), columns = frames; white = given (level 0); "
                 "colour = log10 noise level", fontsize=9)
    fig.tight_layout()
    p = folder / "plans.png"
    fig.savefig(p, metadata={"Software": None})
    plt.close(fig)
    return [*paths, p]

"""`generate()`: every Sora-style mode as one per-frame noise plan (GUIDE.md, "one mechanism for every generation
mode"; Diffusion Forcing's independent per-frame noise levels). A mode only decides which frames are given (noise
level 0 in every row of the plan: the samplers leave them bit-identical) and where the others start:

| mode              | given frames                          | plan (worldsim/diffusion/plans.py)  | attention      |
|-------------------|---------------------------------------|-------------------------------------|----------------|
| `t2v`             | none (text and/or actions condition)  | `t2v` (`pyramid` with `stagger`)    | causal         |
| `i2v`             | frame 0 = `image`                     | `i2v`                               | causal         |
| `extend_forward`  | the first k = `clip`                  | `extend(..., "forward")`            | causal         |
| `extend_backward` | the last k = `clip`                   | `extend(..., "backward")`           | bidirectional  |
|  (time-reversed weights) | the last k, played backward     | `stairs(..., "backward")`: a rollout in reversed time | causal |
| `loop`            | none; frames 0 and T-1 tied           | `loop` + `tie_frames`               | bidirectional  |
| `connect`         | first h = `head`, last t = `tail`     | `connect`                           | bidirectional  |
| `edit` (SDEdit)   | none: `clip` noised to `sigma_start`  | `edit` (Meng et al. 2022)           | causal         |
| `preview`         | a `t2v` draft at `preview_resolution`, upsampled, then `edit` from σ = 1 keeping its block means | `preview` then `edit` | causal |

Any mode takes per-frame `cameras` (multi-shot: a list of T camera names), `actions` (B, T, A), a `caption`,
`params`, and classifier-free guidance scales per condition group (`guidance={"text": 3, "actions": 1.5}`).
Bidirectional modes pass `causal=False` to the network; they are in distribution for weights trained with
`LossConfig.p_bidirectional > 0`. Weights trained on clips played backward too (`data.p_reverse`, their network's
`time_reversal`) extend backward as they roll out forward: the given frames played backward are the context of a
rollout told that time runs backward, one frame at a time with a KV cache, and the frames it makes, played
forward again, are the past. Any resolution the weights were trained at, any number of frames (positions are
relative: RoPE in time). Weights may record that their `t2v` clips denoise only their first K frames together and
roll the rest out (`worldsim export --rollout-after K`): a whole long clip from text moves `collide`'s balls at
half their speed, the rollout at MuJoCo's (docs/experiments.md, E90).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from worldsim.diffusion import plans
from worldsim.diffusion.sampling import SAMPLERS, keep_blocks, tie_frames
from worldsim.errors import ConfigError
from worldsim.rollout.autoregressive import Rollout, RolloutConfig
from worldsim.rollout.model import (WorldModel, check_guidance, check_rollout_after, check_stagger, check_steps,
                                   to_frames, to_model)

MODES = ("t2v", "i2v", "extend_forward", "extend_backward", "loop", "connect", "edit", "preview")
BIDIRECTIONAL = ("extend_backward", "loop", "connect")
# SDEdit's starting level when `sigma_start` is not given. `edit` starts high enough for a new caption to change the
# content; `preview`'s render must keep its draft: σ = 1 renders MuJoCo's own 16-px frames, upsampled, closest to
# MuJoCo's 32-px render of the same states (32.3 dB, 98% of balls kept; σ = 2 keeps 75% at 30.8 dB, below the
# upsampled frame's 31.3 dB; docs/experiments.md, E33).
SIGMA_START = {"edit": 2.0, "preview": 1.0}
# `preview`'s draft takes this many times the render's steps: at half size a step costs a quarter of a full one, and
# a 16-px draft of 4 Euler steps drew `collide`'s balls in 10% of frames, of 16 in 50% (MuJoCo: all); 16 steps there
# take 2.4 s against the render's 6.5 s (docs/experiments.md, E87).
PREVIEW_STEPS = 2


@dataclass
class Generation:
    frames: np.ndarray  # (B, T, H, W, 3) uint8
    plan: torch.Tensor  # (steps + 1, T) noise levels of the (final) pass
    given: np.ndarray  # (T,) bool: frames passed through as given
    mode: str
    preview: np.ndarray | None = None  # (B, T, h, w, 3): the low-resolution draft (preview mode)


def mode_plan(mode: str, steps: int, frames: int, *, given: int = 0, tail: int = 0, sigma_start: float = 2.0,
              model: WorldModel | None = None, stagger: int = 0) -> torch.Tensor:
    """The (steps + 1, frames) noise plan of a mode; `given` = k (extend) or h (connect), `tail` = t (connect);
    `stagger` (t2v): the pyramid plan, frame j's levels j * stagger rows behind frame 0's (`plans.pyramid`)."""
    cfg = model.edm if model is not None else plans.EDMConfig()
    check_steps(steps)
    if mode == "t2v":
        return plans.pyramid(steps, frames, stagger, cfg)  # stagger 0: the t2v plan
    if mode == "preview":
        return plans.t2v(steps, frames, cfg)
    if mode == "i2v":
        return plans.i2v(steps, frames, cfg)
    if mode in ("extend_forward", "extend_backward"):
        return plans.extend(steps, frames, given, mode.split("_")[1], cfg)
    if mode == "loop":
        return plans.loop(steps, frames, cfg=cfg)
    if mode == "connect":
        return plans.connect(steps, frames, given, tail, cfg)
    if mode == "edit":
        return plans.edit(steps, frames, sigma_start, cfg=cfg)
    raise ConfigError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}", field="mode")


def _clip(model: WorldModel, a, hw, name: str, batch: int | None) -> np.ndarray:
    if a is None:
        raise ConfigError(f"this mode needs `{name}`", field=name)
    out = model.check_frames(a, hw, field=name)
    if batch is not None and len(out) not in (1, batch):
        raise ConfigError(f"{name} has {len(out)} clips for a batch of {batch}", field=name)
    return out


def generate(model: WorldModel, mode: str, *, frames: int | None = None, resolution=None, steps: int = 8,
             sampler: str = "euler", batch: int = 1, seed: int = 0, image=None, clip=None, head=None, tail=None,
             caption: str | list[str] | None = None, actions=None, cameras=None, params=None,
             guidance: dict[str, float] | None = None, sigma_start: float | None = None, preview_resolution=None,
             preview_steps: int | None = None, keep_scale: int | tuple[int, int] | None = None,
             keep_draft: bool = True, rollout_after: int | None = None, stagger: int | None = None,
             progress: bool = False) -> Generation:
    """Generate B clips of T frames in `mode` (module docstring). Frames are uint8 (B, T, H, W, 3) in and out;
    `image` (B or 1, H, W, 3); `clip`, `head`, `tail` (B or 1, k, H, W, 3). Deterministic given `seed`.
    `sigma_start`: SDEdit's starting level for `edit` and `preview`'s render (default: `SIGMA_START[mode]`);
    `preview_steps`: the draft's steps (default: `PREVIEW_STEPS` x `steps`).
    `keep_scale` (`edit`): the edit keeps the clip's block means over blocks of that many pixels (`keep_blocks`)
    and changes only the detail within them. `keep_draft` (`preview`): the render keeps the draft's pixels as its
    block means (True, since E87) or is a free SDEdit of the upsampled draft (False, as before).
    `rollout_after` K (`t2v`): only the first K frames are denoised together; the rest are rolled out one frame at a
    time under the same conditioning and guidance, with the weights' own steps (E90: motion the clip's start sets).
    None: the weights' own K (`WorldModel.rollout_after`, recorded by `worldsim export --rollout-after`), else the
    whole clip; a K of at least `frames` denoises the whole clip together.
    `stagger` S (`t2v`): the frames denoised together settle one after another, frame j's noise levels S steps behind
    frame j - 1's (`plans.pyramid`; 0: all together, the `t2v` plan). With `rollout_after`, it staggers the K frames
    made from the conditioning (docs/experiments.md E124). None: the weights' own S (`WorldModel.stagger`, recorded
    by `worldsim export --stagger`; 0 where they record none)."""
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; modes: {', '.join(MODES)}", field="mode")
    if keep_scale is not None and mode != "edit":
        raise ConfigError(f"keep_scale applies to edit, not {mode}", field="keep_scale")
    if not keep_draft and mode != "preview":
        raise ConfigError(f"keep_draft applies to preview, not {mode}", field="keep_draft")
    if rollout_after is not None and mode != "t2v":
        raise ConfigError(f"rollout_after applies to t2v, not {mode}", field="rollout_after")
    if stagger is not None and mode != "t2v":
        raise ConfigError(f"stagger applies to t2v, not {mode}", field="stagger")
    stagger = t2v_stagger(model, stagger) if mode == "t2v" else 0
    if mode == "t2v" and (k := t2v_rollout_after(model, rollout_after, _frames(frames, 1))) is not None:
        return _text_then_rollout(model, int(frames), k, steps, sampler, batch, seed, resolution, caption, actions,
                                  cameras, params, guidance, progress, stagger)
    steps = check_steps(steps)
    guidance = check_guidance(guidance)
    if sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler {sampler!r}; known: {list(SAMPLERS)}", field="sampler")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a positive integer, got {batch!r}", field="batch")
    hw = model.resolution(resolution)
    sigma_start = SIGMA_START.get(mode) if sigma_start is None else sigma_start  # used by edit and preview only
    if mode == "extend_backward" and model.net.cfg.time_reversal:
        return _past(model, clip, frames, hw, steps, sampler, batch, seed, caption, actions, cameras, params,
                     guidance, progress)
    if mode == "preview":
        draft_steps = PREVIEW_STEPS * steps if preview_steps is None else check_steps(preview_steps, "preview_steps")
        return _preview(model, frames, hw, steps, sampler, batch, seed, caption, actions, cameras, params, guidance,
                        sigma_start, preview_resolution, draft_steps, keep_draft, progress)
    given_idx: list[int] = []
    tail_n = 0
    if mode == "i2v":
        img = np.asarray(image) if image is not None else None
        known = _clip(model, None if img is None else (img[:, None] if img.ndim == 4 else img[None, None]), hw,
                      "image", batch)
        T = _frames(frames, 2)
        given_idx = [0]
    elif mode in ("extend_forward", "extend_backward"):
        known = _clip(model, clip, hw, "clip", batch)
        k = known.shape[1]
        T = _frames(frames, k + 1)
        given_idx = list(range(k)) if mode == "extend_forward" else list(range(T - k, T))
    elif mode == "connect":
        h_clip, t_clip = _clip(model, head, hw, "head", batch), _clip(model, tail, hw, "tail", batch)
        h, tail_n = h_clip.shape[1], t_clip.shape[1]
        T = _frames(frames, h + tail_n + 1)
        b = max(len(h_clip), len(t_clip))
        known = np.concatenate([np.broadcast_to(h_clip, (b, *h_clip.shape[1:])),
                                np.broadcast_to(t_clip, (b, *t_clip.shape[1:]))], 1)
        given_idx = list(range(h)) + list(range(T - tail_n, T))
    elif mode == "edit":
        known = _clip(model, clip, hw, "clip", batch)
        T = known.shape[1]
        if frames is not None and frames != T:
            raise ConfigError(f"edit keeps the clip's length ({T} frames), got frames={frames}", field="frames")
        if not (np.isfinite(sigma_start) and sigma_start > 0):
            raise ConfigError(f"sigma_start must be > 0, got {sigma_start}", field="sigma_start")
        keep_scale = _keep_scale(keep_scale, hw)
    else:
        known = None
        T = _frames(frames, 2 if mode == "loop" else 1)
    plan = mode_plan(mode, steps, T, given=len(given_idx) - tail_n if mode != "i2v" else 1, tail=tail_n,
                     sigma_start=sigma_start, model=model, stagger=stagger)
    x = torch.zeros(batch, T, 3, *hw, device=model.device)
    if known is not None:
        kx = to_model(known).to(model.device)                                             # (b, k, C, H, W)
        if not torch.isfinite(kx).all():
            raise ConfigError("given frames hold NaN or inf", field="clip")
        kx = kx.expand(batch, *kx.shape[1:])
        if mode == "edit":
            x = kx.clone()
        else:
            x[:, given_idx] = kx
    anchor = None if keep_scale is None else (x, keep_scale)  # edit only (checked above); the sampler leaves x as is
    out = _sample(model, x, plan, mode, sampler, seed, caption, actions, cameras, params, guidance, progress, anchor)
    given = np.zeros(T, bool)
    given[given_idx] = True
    return Generation(to_frames(out), plan, given, mode)


def t2v_rollout_after(model: WorldModel, rollout_after: int | None, frames: int) -> int | None:
    """The K a `t2v` clip of `frames` frames is made with: the caller's, else the weights' own; None when the whole
    clip is denoised together (no K, or K >= frames)."""
    k = check_rollout_after(rollout_after) if rollout_after is not None else model.rollout_after
    return k if k is not None and frames > k else None


def t2v_stagger(model: WorldModel, stagger: int | None) -> int:
    """The pyramid lag a `t2v` clip's frames made together are denoised with: the caller's, else the weights' own."""
    return model.stagger if stagger is None else check_stagger(stagger)


def _text_then_rollout(model: WorldModel, frames: int, k, steps, sampler, batch, seed, resolution, caption,
                       actions, cameras, params, guidance, progress: bool, stagger: int = 0) -> Generation:
    """`t2v` with `rollout_after` = k: the first k frames denoised together from the conditioning, the other
    frames rolled out one at a time after them (a KV-cached `Rollout` with the weights' own steps, the same caption,
    parameters, guidance and sampler). Whole 32-frame `collide` clips denoised together barely move their balls
    (2-4 px where MuJoCo's travel 10); the rollout carries on the motion its first frames set (E90)."""
    if not model.net.cfg.causal:
        raise ConfigError("rollout_after needs a frame-causal model (causal=True)", source=model.source,
                          field="model.config.causal")
    acts = None if actions is None else model.check_actions(actions, batch, frames)         # (B, T, A)
    cams = cameras if cameras is None or isinstance(cameras, str) else list(cameras)
    if isinstance(cams, list) and len(cams) != frames:
        raise ConfigError(f"cameras names {len(cams)} frames for {frames}", field="cameras")
    head_acts = None if acts is None else acts[:, :k]
    head_cams = cams[:k] if isinstance(cams, list) else cams
    head = generate(model, "t2v", frames=k, resolution=resolution, steps=steps, sampler=sampler, batch=batch,
                    seed=seed, caption=caption, actions=head_acts, cameras=head_cams, params=params,
                    guidance=guidance, rollout_after=k, stagger=stagger, progress=progress)  # k frames: denoised whole
    r = Rollout(model, head.frames, actions=head_acts, cameras=head_cams, params=params, text=caption,
                config=RolloutConfig(sampler=sampler, guidance=guidance or {}), seed=seed)
    rest = [r.step(None if acts is None else acts[:, t], camera=cams[t] if isinstance(cams, list) else None)
            for t in range(k, frames)]                                                  # (B, H, W, 3) each
    return Generation(np.concatenate([head.frames, np.stack(rest, 1)], 1), head.plan, np.zeros(frames, bool), "t2v")


def _frames(frames: int | None, minimum: int) -> int:
    if frames is None:
        raise ConfigError("give the number of frames to generate", field="frames")
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < minimum:
        raise ConfigError(f"this mode needs at least {minimum} frames, got {frames!r}", field="frames")
    return int(frames)


def _keep_scale(keep_scale, hw: tuple[int, int]) -> tuple[int, int] | None:
    """`keep_scale` as (fh, fw) blocks that tile the frame, or None."""
    if keep_scale is None:
        return None
    f = (keep_scale, keep_scale) if isinstance(keep_scale, (int, np.integer)) else tuple(keep_scale)
    if len(f) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in f) \
            or hw[0] % f[0] or hw[1] % f[1]:
        raise ConfigError(f"keep_scale must be a positive integer (or two) dividing the frame {hw}, got "
                          f"{keep_scale!r}", field="keep_scale")
    return int(f[0]), int(f[1])


def _sample(model: WorldModel, x: torch.Tensor, plan: torch.Tensor, mode: str, sampler: str, seed: int, caption,
            actions, cameras, params, guidance, progress: bool, anchor=None) -> torch.Tensor:
    """`anchor` (reference (B, T, C, H, W), (fh, fw)): the sample keeps the reference's block means (`keep_blocks`)."""
    from tqdm.auto import tqdm

    B, T = x.shape[:2]
    cond = model.cond(B, T, actions=actions, cameras=cameras, params=params, text=caption)
    g = torch.Generator().manual_seed(int(seed))
    x0 = plans.initial(x, plan, g)
    denoiser = model.denoiser
    if mode == "loop":
        denoiser = tie_frames(denoiser, [(0, T - 1)])
    if anchor is not None:
        denoiser = keep_blocks(denoiser, *anchor)
    extra = {"causal": False} if mode in BIDIRECTIONAL else None
    with tqdm(total=plan.shape[0] - 1, unit="step", desc=f"generate {mode}", disable=not progress) as bar:
        return SAMPLERS[sampler](denoiser, x0, plan, cond, guidance=guidance or None, extra_args=extra,
                                 callback=lambda info: bar.update(1),
                                 noise=lambda shape: torch.randn(shape, generator=g))


def _past(model, clip, frames, hw, steps, sampler, batch, seed, caption, actions, cameras, params, guidance,
          progress) -> Generation:
    """extend_backward for time-reversed weights: a frame-by-frame rollout from the last given frame back, under the
    conditioning such weights saw on reversed clips (cameras reversed, no caption, no actions)."""
    from tqdm.auto import tqdm

    from worldsim.rollout.autoregressive import Rollout, RolloutConfig

    if caption is not None or actions is not None:
        raise ConfigError("these weights extend backward by rolling out in reversed time, which they learned from "
                          "clips without captions or actions: give neither", source=model.source,
                          field="caption" if caption is not None else "actions")
    known = _clip(model, clip, hw, "clip", batch)
    k = known.shape[1]
    T = _frames(frames, k + 1)
    known = np.broadcast_to(known, (batch, *known.shape[1:]))[:, ::-1]                 # (B, k, H, W, 3) backward
    cams = cameras if cameras is None or isinstance(cameras, str) else list(cameras)
    if isinstance(cams, list):
        if len(cams) != T:
            raise ConfigError(f"expected one camera per frame ({T}), got {len(cams)}", field="cameras")
        cams = cams[::-1]
    config = RolloutConfig(steps=steps, sampler=sampler, guidance=guidance)
    r = Rollout(model, np.ascontiguousarray(known), cameras=cams[:k] if isinstance(cams, list) else cams,
                params=params, config=config, seed=seed, resolution=hw, reversed=True)
    made = []
    for t in tqdm(range(k, T), unit="frame", desc="generate extend_backward", disable=not progress):
        made.append(r.step(camera=cams[t] if isinstance(cams, list) else None))
    out = np.concatenate([known, np.stack(made, 1)], 1)[:, ::-1]                      # (B, T, H, W, 3) forward
    given = np.zeros(T, bool)
    given[T - k:] = True
    return Generation(np.ascontiguousarray(out), plans.stairs(steps, T, k, "backward", model.edm), given,
                      "extend_backward")


def _preview(model, frames, hw, steps, sampler, batch, seed, caption, actions, cameras, params, guidance, sigma_start,
             preview_resolution, preview_steps, keep_draft, progress) -> Generation:
    """Sora's "prototype at low resolution, then render at full size" with one model: a t2v draft on the smaller
    grid, upsampled (nearest), then SDEdit at full size from `sigma_start` with the same seed and conditioning,
    keeping the draft's pixels as the render's block means (`keep_draft`), so the render shows what the draft did."""
    if preview_resolution is None:
        smaller = [r for r in model.scene.resolutions if r[0] * r[1] < hw[0] * hw[1]]
        if not smaller:
            raise ConfigError(f"no trained resolution below {hw}: give preview_resolution", field="preview_resolution")
        preview_resolution = max(smaller, key=lambda r: r[0] * r[1])
    lo = model.resolution(preview_resolution)
    if hw[0] % lo[0] or hw[1] % lo[1]:
        raise ConfigError(f"the full size {hw} must be a whole multiple of the preview's {lo}", field="preview_resolution")
    draft = generate(model, "t2v", frames=frames, resolution=lo, steps=preview_steps, sampler=sampler, batch=batch,
                     seed=seed, caption=caption, actions=actions, cameras=cameras, params=params, guidance=guidance,
                     rollout_after=_frames(frames, 1), stagger=0, progress=progress)  # the draft: whole (E87)
    up = np.repeat(np.repeat(draft.frames, hw[0] // lo[0], axis=2), hw[1] // lo[1], axis=3)
    final = generate(model, "edit", clip=up, resolution=hw, steps=steps, sampler=sampler, batch=batch, seed=seed,
                     caption=caption, actions=actions, cameras=cameras, params=params, guidance=guidance,
                     sigma_start=sigma_start, keep_scale=(hw[0] // lo[0], hw[1] // lo[1]) if keep_draft else None,
                     progress=progress)
    return Generation(final.frames, final.plan, final.given, "preview", preview=draft.frames)

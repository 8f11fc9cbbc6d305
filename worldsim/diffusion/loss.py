"""The training loss with an independent noise level per frame (Diffusion Forcing) and random conditioning
patterns (Open-Sora 1.1): in a share of clips some frames are context, given almost clean (a small random noise
level, as GameNGen found essential against drift in long rollouts) and left out of the loss. Every generation mode
is then a noise plan over a model trained this way (`plans`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from einops import rearrange

from worldsim.diffusion.edm import Denoiser, EDMConfig, loss_weight, per_frame, sample_sigma, schedule_level
from worldsim.diffusion.fade import FadeConfig, draw_fade, fade_context
from worldsim.diffusion.own_context import OwnContextConfig, draw_own, own_context
from worldsim.errors import ConfigError

PATTERNS = ("first", "first_k", "last_k", "first_last", "ends_k")  # besides "all noisy"
# "ends_k" (the first and the last k frames: `connect` with multi-frame head and tail) is opt-in: the default set
# is the original four, so configs written before it keep every random draw they had.
DEFAULT_PATTERNS = PATTERNS[:4]
# A pixel "moves" where its RGB step to a neighbouring frame exceeds 40 8-bit levels (Euclidean): the motion mask of
# Physics-IQ and the moving-pixel metrics (worldsim.eval.metrics.MOTION_DISTANCE), in the [-1, 1] units of clips.
MOTION_THRESHOLD = 40 / 127.5
MOTION_MASKS = ("past", "target")
CLIP_SETS = ("all", "no_context")  # which clips an option applies to: every one, or those given no context frame


@dataclass(frozen=True)
class LossConfig:
    edm: EDMConfig = field(default_factory=EDMConfig)
    p_context: float = 0.5  # share of clips given a conditioning pattern (Open-Sora 1.1: about half)
    patterns: tuple[str, ...] = DEFAULT_PATTERNS
    context_sigma: float = 0.1  # context frames get sigma ~ U(0, this): robust to imperfect generated context
    p_bidirectional: float = 0.0  # share of steps run without the causal mask (passes causal=False to the net)
    fade: FadeConfig = field(default_factory=FadeConfig)  # context frames shown faded (`fade`); off by default
    own_context: OwnContextConfig = field(default_factory=OwnContextConfig)  # context from own samples; off by default
    # Moving pixels count 1 + this in each frame's (weighted mean) error: a 3-px ball is 1% of a 32x32 frame, so
    # unweighted its loss is noise beside the background's. 0 is the plain mean, off by default (E44, E45).
    motion_weight: float = 0.0
    # Which pixels: "past", where the two previous frames moved, widened by `motion_radius` px (known from the
    # context, so the loss's optimum stays the conditional mean); "target", where the scored frame itself moves (an
    # optimum biased toward drawing objects wherever they may be: E44 sprayed balls over the frame).
    motion_mask: str = "past"
    motion_radius: int = 2  # px: about the fastest object's step per frame at 32x32
    # Which clips are weighted: "all", or "no_context", those given no context frame (text-to-video's job: there a
    # 3-px ball drawn as a 1-px speck costs the plain mean next to nothing; E89). Rollout clips stay plain.
    motion_clips: str = "all"
    # Share of the clips given context whose caption is withheld (the text's null), so that continuing a clip from
    # its frames alone is learned as often as with a caption: rollouts are given none, and with captions on 90% of
    # the clips `collide`'s rollouts read the balls' motion from the text rather than the frames (E99, E100).
    p_uncaptioned: float = 0.0
    # Share of clips whose noisy frames all take one noise level (their first noisy frame's): what a sampler gives
    # the frames it makes together (t2v, extend, connect), and with independent levels per frame a case training
    # almost never draws: there the motion must come from the text or context, not from a less noisy neighbour.
    p_shared_sigma: float = 0.0
    # Share of clips whose noisy frames are each noisier than the one before, as a staggered `t2v` plan
    # (`plans.pyramid`) samples them and independent levels almost never draw for 8 frames: one row of a pyramid
    # that spans the sampling schedule once (`pyramid_levels`; Rolling Diffusion's window, Ruhe et al. 2024).
    p_pyramid: float = 0.0
    # Which clips may be drawn so: "all", or "no_context" (text-to-video's clips; rollouts sample one frame at a
    # time from clean context and never see a pyramid: E128 drew it on all clips and its rollouts lost 5 Physics-IQ).
    pyramid_clips: str = "all"

    def __post_init__(self):
        bad = [p for p in self.patterns if p not in PATTERNS]
        if bad:
            raise ConfigError(f"unknown pattern {bad[0]!r}; known: {PATTERNS}", source="LossConfig", field="patterns")
        for name in ("p_context", "p_bidirectional", "p_uncaptioned", "p_shared_sigma", "p_pyramid"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"must be in [0, 1], got {getattr(self, name)}", source="LossConfig", field=name)
        if self.motion_weight < 0:
            raise ConfigError(f"must be >= 0, got {self.motion_weight}", source="LossConfig", field="motion_weight")
        if self.motion_mask not in MOTION_MASKS:
            raise ConfigError(f"unknown mask {self.motion_mask!r}; known: {MOTION_MASKS}", source="LossConfig",
                              field="motion_mask")
        for name in ("motion_clips", "pyramid_clips"):
            if getattr(self, name) not in CLIP_SETS:
                raise ConfigError(f"unknown clips {getattr(self, name)!r}; known: {CLIP_SETS}", source="LossConfig",
                                  field=name)
        if self.motion_radius < 0:
            raise ConfigError(f"must be >= 0, got {self.motion_radius}", source="LossConfig", field="motion_radius")


def _steps(x: torch.Tensor) -> torch.Tensor:
    """(B, T-1, H, W) bool: pixels whose colour steps by more than `MOTION_THRESHOLD` from frame t to t + 1."""
    return (x[:, 1:].float() - x[:, :-1].float()).pow(2).sum(dim=2).sqrt() > MOTION_THRESHOLD


def motion_mask(x: torch.Tensor, kind: str, radius: int = 0) -> torch.Tensor:
    """(B, T, H, W) bool for clips x (B, T, C, H, W). "target": pixels that step to the previous or the next frame
    (an object where it is and where it was). "past": pixels that stepped from frame t-2 to t-1, widened by `radius`
    px, where an object of frame t can be if it moves at most `radius` px a frame; nothing in the first two frames."""
    B, T, _, H, W = x.shape
    moved = torch.zeros(B, T, H, W, dtype=torch.bool, device=x.device)
    if T < 2:
        return moved
    step = _steps(x)                                                                        # (B, T-1, H, W)
    if kind == "target":
        moved[:, 1:] |= step
        moved[:, :-1] |= step
        return moved
    if T > 2:
        past = step[:, :-1].float()                                                         # (B, T-2, H, W)
        if radius > 0:
            past = F.max_pool2d(rearrange(past, "b t h w -> (b t) 1 h w"), 2 * radius + 1, stride=1, padding=radius)
            past = rearrange(past, "(b t) 1 h w -> b t h w", b=B)
        moved[:, 2:] = past > 0
    return moved


def context_mask(batch: int, frames: int, cfg: LossConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, T) bool, True for context frames: per clip, with probability `p_context` one pattern drawn uniformly
    (first frame; first k; last k; first and last; first and last max(1, k // 2); k uniform in [1, T-1]), else
    none (all frames noisy)."""
    mask = torch.zeros(batch, frames, dtype=torch.bool)
    if frames < 2 or not cfg.patterns:
        return mask
    r = torch.rand(batch, generator=generator)
    which = torch.randint(len(cfg.patterns), (batch,), generator=generator)
    ks = torch.randint(1, frames, (batch,), generator=generator)
    for b in range(batch):
        if r[b] >= cfg.p_context:
            continue
        p, k = cfg.patterns[int(which[b])], int(ks[b])
        if p == "first" or (p in ("first_last", "ends_k") and frames < 3):
            mask[b, 0] = True
        elif p == "first_k":
            mask[b, :k] = True
        elif p == "last_k":
            mask[b, frames - k:] = True
        elif p == "ends_k":
            e = min(max(1, k // 2), (frames - 1) // 2)  # at least one frame between the two ends stays noisy
            mask[b, :e] = True
            mask[b, frames - e:] = True
        else:
            mask[b, [0, frames - 1]] = True
    return mask


@dataclass(frozen=True)
class Draw:
    """The random part of one loss evaluation: per-frame noise levels and context mask (B, T), the noise
    (B, T, C, H, W), whether this step runs without the causal mask, the context fading (alpha, blur), each
    (B, T), or None, the own-context draw (frames sampled per clip (B,), start noise (B, T, C, H, W)) or None, and
    the clips whose caption is withheld (B,) bool, or None."""

    sigma: torch.Tensor
    noise: torch.Tensor
    context: torch.Tensor
    causal: bool = True
    fade: tuple[torch.Tensor, torch.Tensor] | None = None
    own: tuple[torch.Tensor, torch.Tensor] | None = None
    uncaptioned: torch.Tensor | None = None

    def rows(self, index) -> "Draw":
        """The draw of clips `index` (e.g. one data-parallel rank's slice of the global batch)."""
        fade = None if self.fade is None else tuple(f[index] for f in self.fade)
        own = None if self.own is None else tuple(o[index] for o in self.own)
        bare = None if self.uncaptioned is None else self.uncaptioned[index]
        return Draw(self.sigma[index], self.noise[index], self.context[index], self.causal, fade, own, bare)


def draw(shape: tuple[int, ...], cfg: LossConfig = LossConfig(), generator: torch.Generator | None = None) -> Draw:
    """Everything random in `loss` for clips of `shape` (B, T, C, H, W). Drawing it for the global batch and
    slicing per rank makes N data-parallel processes see exactly the draws of one process with the whole batch."""
    B, T = shape[:2]
    context = context_mask(B, T, cfg, generator)
    sigma = sample_sigma((B, T), cfg.edm, generator)                                          # (B, T)
    ctx_sigma = torch.rand(B, T, generator=generator) * cfg.context_sigma
    sigma = torch.where(context, ctx_sigma, sigma)
    noise = torch.randn(shape, generator=generator)
    causal = not (cfg.p_bidirectional > 0 and float(torch.rand((), generator=generator)) < cfg.p_bidirectional)
    # Drawn last and only when on, so runs without them keep every draw they had before they existed.
    fade = draw_fade(context, cfg.fade, generator)
    own = draw_own(context, cfg.own_context, shape, generator)
    bare = None
    if cfg.p_uncaptioned > 0:
        bare = context.any(1) & (torch.rand(B, generator=generator) < cfg.p_uncaptioned)                  # (B,)
    if cfg.p_shared_sigma > 0:
        shared = torch.rand(B, generator=generator) < cfg.p_shared_sigma                                  # (B,)
        first = torch.where(context, torch.inf, sigma).argmin(1, keepdim=True)  # a noisy frame (context < inf)
        one = sigma.gather(1, first).expand(B, T)                                                         # (B, T)
        sigma = torch.where(shared[:, None] & ~context, one, sigma)
    if cfg.p_pyramid > 0:
        chosen = torch.rand(B, generator=generator) < cfg.p_pyramid                                       # (B,)
        if cfg.pyramid_clips == "no_context":
            chosen &= ~context.any(1)
        sigma = torch.where(chosen[:, None] & ~context, pyramid_levels(context, cfg, generator), sigma)
    return Draw(sigma, noise, context, causal, fade, own, bare)


def pyramid_levels(context: torch.Tensor, cfg: LossConfig, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """(B, T) levels for each clip's n noisy frames as one row of a pyramid over the sampling schedule: the j-th
    sits at place 1 - (j + t) / n (EDM eq. 5 read continuously: 0 is sigma_max, 1 sigma_min), t ~ U(0, 1) per clip,
    so the row spans the schedule once, cleanest first, none past either end (a draw clamped there would score
    frames at sigma_min, whose target is the noise itself, and wait frames at sigma_max). Context entries: arbitrary."""
    B, T = context.shape
    j = (~context).cumsum(1) - 1                                                               # (B, T) noisy index
    n = (~context).sum(1, keepdim=True).clamp(min=1)                                           # (B, 1)
    u = 1 - (j + torch.rand(B, 1, generator=generator)) / n                                    # (B, T) in (0, 1]
    return schedule_level(u.clamp(0, 1), cfg.edm)


def loss(denoiser: Denoiser, x: torch.Tensor, cond=None, *, cfg: LossConfig = LossConfig(),
         generator: torch.Generator | None = None, sigma: torch.Tensor | None = None,
         noise: torch.Tensor | None = None, context: torch.Tensor | None = None,
         drawn: Draw | None = None) -> torch.Tensor:
    """EDM loss of `denoiser` on clean clips x (B, T, C, H, W) in [-1, 1]; a scalar.

    Per frame: lambda(sigma) * mean((D(x + sigma n; sigma) - x)^2), summed over the non-context frames and divided
    by the number of frames (B T); with `motion_weight` the mean is weighted toward moving pixels (`motion_mask`).
    With a drawn fade, the network sees the faded context (`fade`), and with a drawn own context, context frames it
    sampled itself (`own_context`), while the frames it is scored on stay the clean x; clips drawn uncaptioned
    (`p_uncaptioned`) lose their caption, in the own-context sampling too.
    `sigma`, `noise` and `context` (B, T) may be given (fixed evaluations), or all of them as `drawn`; what is
    not given is drawn from `generator`."""
    dev = x.device
    kwargs, fade, own = {}, None, None
    if drawn is None and (sigma is None or noise is None or context is None):
        drawn = draw(tuple(x.shape), cfg, generator)
    if drawn is not None:
        sigma = drawn.sigma if sigma is None else sigma
        noise = drawn.noise if noise is None else noise
        context = drawn.context if context is None else context
        if not drawn.causal:
            kwargs["causal"] = False
        fade, own = drawn.fade, drawn.own
        if drawn.uncaptioned is not None and cond is not None and cond.text is not None:
            cond = cond.withhold_text(drawn.uncaptioned)
    sigma, noise, context = sigma.to(dev), noise.to(dev, x.dtype), context.to(dev)
    shown = x
    if own is not None and bool(own[0].any()):
        shown = own_context(denoiser, x, cond, context, own[0].to(dev), own[1].to(dev), cfg.own_context.steps, cfg.edm)
    shown = shown if fade is None else fade_context(shown, *fade)
    xt = shown + per_frame(sigma) * noise                                                  # (B, T, C, H, W)
    denoised = denoiser(xt, sigma, cond, **kwargs)
    sq_err = (denoised.float() - x.float()).pow(2)                                         # (B, T, C, H, W)
    if cfg.motion_weight > 0:
        moved = motion_mask(x, cfg.motion_mask, cfg.motion_radius)                          # (B, T, H, W)
        if cfg.motion_clips == "no_context":
            moved = moved & ~context.any(1)[:, None, None, None]
        weight = 1.0 + cfg.motion_weight * moved.unsqueeze(2).float()                       # (B, T, 1, H, W)
        per_frame_err = (sq_err * weight).mean(dim=(2, 3, 4)) / weight.mean(dim=(2, 3, 4))  # (B, T)
    else:
        per_frame_err = sq_err.mean(dim=(2, 3, 4))                                          # (B, T)
    target = (~context).float()
    # A mean over clips of each clip's summed frame losses / T (context frames add 0): linear in the clips, so a
    # batch split across data-parallel ranks averages to exactly the whole batch's loss.
    return (loss_weight(sigma, cfg.edm) * per_frame_err * target).sum() / target.numel()


def fixed_grid_loss(denoiser: Denoiser, x: torch.Tensor, cond=None, *, levels: int = 8, cfg: LossConfig = LossConfig(),
                    seed: int = 0) -> torch.Tensor:
    """The loss on a fixed grid of noise levels (all frames at each level in turn) with fixed noise: a number that
    changes only when the denoiser does, for validation curves and overfitting checks. Always the plain mean
    (`motion_weight` off), so runs with and without the weighting share one validation scale."""
    cfg = replace(cfg, motion_weight=0.0)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=g).to(x.device)
    none = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    total = x.new_zeros(())
    with torch.no_grad():
        for s in _grid(levels, cfg.edm):
            sigma = torch.full(x.shape[:2], float(s), device=x.device)
            total = total + loss(denoiser, x, cond, cfg=cfg, sigma=sigma, noise=noise, context=none)
    return total / levels


def next_frame_losses(denoiser: Denoiser, x: torch.Tensor, cond, *, levels: int = 8, cfg: LossConfig = LossConfig(),
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss of each clip's last frame, its earlier frames clean context (what a rollout step does), over the
    fixed grid of noise levels with fixed noise: (with `cond`, with its actions nulled). A model that uses its actions
    scores lower with them; one that ignores them scores the same (E48: equal to five digits). Plain mean."""
    cfg = replace(cfg, motion_weight=0.0)
    B, T = x.shape[:2]
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x.shape, generator=g).to(x.device)
    context = torch.ones(B, T, dtype=torch.bool, device=x.device)
    context[:, -1] = False
    nulled = cond.without("actions")
    with_, without = x.new_zeros(()), x.new_zeros(())
    with torch.no_grad():
        for s in _grid(levels, cfg.edm):
            sigma = torch.where(context, 0.0, float(s))                                      # (B, T)
            with_ = with_ + loss(denoiser, x, cond, cfg=cfg, sigma=sigma, noise=noise, context=context)
            without = without + loss(denoiser, x, nulled, cfg=cfg, sigma=sigma, noise=noise, context=context)
    # `loss` divides by every frame of the clip (B T); one frame per clip is scored: the per-frame mean is T times it.
    return with_ * T / levels, without * T / levels


def _grid(levels: int, cfg: EDMConfig) -> torch.Tensor:
    lo, hi = cfg.p_mean - 2 * cfg.p_std, cfg.p_mean + 2 * cfg.p_std
    return torch.linspace(lo, hi, levels).exp()

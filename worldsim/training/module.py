"""The LightningModule: a thin wrapper that builds the video DiT for the data's scene, calls the diffusion loss
(`worldsim.diffusion.loss`), and schedules the learning rate. Side work (EMA, NaN stop, throughput, samples) lives
in callbacks; the loss lives in the diffusion package; the network knows nothing of either."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch

from worldsim import pretrained
from worldsim.diffusion.edm import EDMConfig, EDMDenoiser
from worldsim.diffusion.fade import FadeConfig
from worldsim.diffusion.loss import LossConfig, draw, fixed_grid_loss, loss, next_frame_losses
from worldsim.diffusion.own_context import OwnContextConfig
from worldsim.errors import ConfigError, WeightsError
from worldsim.models import flops
from worldsim.models.conditioning import Cond
from worldsim.models.presets import model_config
from worldsim.models.dit import VideoDiT
from worldsim.weights import load_weights


def loss_config(overrides: dict[str, Any]) -> LossConfig:
    """LossConfig with `overrides` (`edm`, `fade` and `own_context` dicts for EDMConfig, FadeConfig and
    OwnContextConfig fields); unknown keys are errors naming the key."""
    overrides = dict(overrides)
    edm, fade, own = overrides.pop("edm", {}), overrides.pop("fade", {}), overrides.pop("own_context", {})
    for cls, given, where in ((LossConfig, overrides, "model.loss"), (EDMConfig, edm, "model.loss.edm"),
                              (FadeConfig, fade, "model.loss.fade"),
                              (OwnContextConfig, own, "model.loss.own_context")):
        bad = sorted(set(given) - {f.name for f in dataclasses.fields(cls)})
        if bad:
            raise ConfigError(f"unknown key {bad[0]!r}; known: {sorted(f.name for f in dataclasses.fields(cls))}",
                              field=f"{where}.{bad[0]}")
    if "patterns" in overrides:
        overrides["patterns"] = tuple(overrides["patterns"])
    return LossConfig(edm=EDMConfig(**edm), fade=FadeConfig(**fade), own_context=OwnContextConfig(**own), **overrides)


FUTURE_EMBEDDING = "embed_future.weight"
DIRECTION_EMBEDDING = "cond.direction.weight"
WARP_SHIFT = "warp.shift.weight"
TOKEN_EMBEDDING = "embed.weight"
TEXT_POSITIONS = "cond.text.pos"


def _under(name: str, prefix: str) -> bool:
    """Whether tensor `name` is the part `prefix` names or lies under it (`cond.text` holds `cond.text.pos`)."""
    return name == prefix or name.startswith(prefix + ".")


def initial_weights(given: str, expected: dict[str, torch.Tensor], fresh: tuple[str, ...] = ()
                    ) -> dict[str, torch.Tensor]:
    """The tensors of `given` (a weights file, else a shipped scene's name) for a network whose state is `expected`;
    an error naming `model.init_weights` and the first tensor that is missing, extra or of another shape. The
    exceptions start what the file lacks at zero, the same function as the file's network: the `future` and the
    time-direction embeddings, and for `action_warp` its shift and the token embedding's columns of the warped frame
    (the last ones). A longer text `max_len` keeps the file's position embeddings for the first bytes and the new
    network's random ones after them (captions the file's model cut now reach it whole). Tensors named under a
    `fresh` prefix (`model.init_fresh`) keep the new network's random draw, whatever the file holds."""
    path = Path(given)
    if not path.is_file():
        if given not in pretrained.available():
            raise ConfigError(f"{given!r} is neither a weights file nor a shipped scene ({pretrained.available()})",
                              field="model.init_weights")
        path = pretrained.path(given)
    try:
        tensors, _ = load_weights(path)
    except WeightsError as e:
        raise ConfigError(f"{e.field}: {e.message}", source=path, field="model.init_weights") from None
    for prefix in fresh:
        under = [k for k in expected if _under(k, prefix)]
        if not under:
            raise ConfigError(f"no tensor of this network is named {prefix!r} or under it", field="model.init_fresh")
        for k in under:
            tensors[k] = expected[k]
        for k in [k for k in tensors if _under(k, prefix) and k not in expected]:
            del tensors[k]
    adds_warp = WARP_SHIFT in expected and WARP_SHIFT not in tensors
    patch_dim = expected["final.linear.weight"].shape[0]  # the warped frame adds one patch per token
    for name in sorted(set(expected) | set(tensors)):
        have, want = tensors.get(name), expected.get(name)
        if have is None and name in (FUTURE_EMBEDDING, DIRECTION_EMBEDDING, WARP_SHIFT):  # added: zero
            tensors[name] = torch.zeros_like(want)
            continue
        warp_columns = (adds_warp and name == TOKEN_EMBEDDING and have is not None
                        and have.shape == (want.shape[0], want.shape[1] - patch_dim))
        if warp_columns:
            tensors[name] = torch.cat((have, have.new_zeros(want.shape[0], want.shape[1] - have.shape[1])), 1)
            continue
        if (name == TEXT_POSITIONS and have is not None and want is not None and have.shape[1:] == want.shape[1:]
                and have.shape[0] < want.shape[0]):
            tensors[name] = torch.cat((have, want[have.shape[0]:].to(have.dtype)))
            continue
        if have is None or want is None or have.shape != want.shape:
            raise ConfigError(f"tensor {name!r} is {'absent' if have is None else tuple(have.shape)}, this "
                              f"model's is {'absent' if want is None else tuple(want.shape)}; fine-tuning needs the "
                              "same network (preset and overrides) as the weights", source=path,
                              field="model.init_weights")
    return {k: v.to(expected[k].dtype) for k, v in tensors.items()}


def step_seed(seed: int, step: int) -> int:
    """The seed of training step `step`: every random draw of a step derives from it, so resume is exact."""
    return (seed * 1_000_003 + step) % (2**63 - 1)


class WorldModel(L.LightningModule):
    """Args:
        preset: model size (`debug`, `tiny`, `S`, `B`, `L`).
        overrides: DiTConfig fields to change from the preset (e.g. `{width: 128, attention: full}`).
        scene: what the model is trained for (name, resolution, frame_skip, fps, cameras, action_dim, param_names):
            linked from the datamodule by `worldsim fit`, not typed by hand.
        loss: LossConfig fields (and `edm: {...}`, `fade: {...}`, `own_context: {...}` for EDMConfig, FadeConfig,
            OwnContextConfig fields) to change.
        lr, weight_decay, warmup_steps, max_steps, min_lr_ratio: AdamW with linear warm-up, then cosine decay to
            `min_lr_ratio * lr` at `max_steps`.
        seed: training randomness (noise levels, noise, patterns, condition dropout) is a function of (seed, step).
        val_levels: noise levels of the fixed-grid validation loss.
        text: whether to condition on captions.
        init_weights: start from these weights instead of a random draw (fine-tuning): an exported `.safetensors`
            file, or a shipped scene's name (`bounce`). The network must be the same shape; the optimizer, schedule
            and EMA start fresh.
        init_fresh: names of parts of the network (tensor-name prefixes, e.g. `[cond.text, cond.text_proj]` for a new
            caption encoder) that start from this run's random draw rather than from `init_weights`, which then
            need not have them or may have them in another shape.
        train_only: names of parts of the network (tensor-name prefixes, e.g. `[cond.facts]`) that train; the rest
            keeps `init_weights` unchanged. With the text group's new parts alone, every call without a caption (all
            rollouts) is the file's network exactly.
        warp_init: with `overrides.action_warp`, the displacement each unit of action commands, 2 rows (dx, dy) of
            A px at a 32-px frame height, as `worldsim inspect STORE` measures it; the warp starts there instead of
            at zero (learned from zero, E50's went the wrong way).
    """

    def __init__(self, preset: str = "tiny", overrides: dict[str, Any] | None = None, scene: dict[str, Any] | None = None,
                 loss: dict[str, Any] | None = None, lr: float = 3e-4, weight_decay: float = 0.0,
                 warmup_steps: int = 100, max_steps: int = 1000, min_lr_ratio: float = 0.1, seed: int = 0,
                 val_levels: int = 8, text: bool = True, init_weights: str | None = None,
                 warp_init: list[list[float]] | None = None, init_fresh: list[str] | None = None,
                 train_only: list[str] | None = None):
        super().__init__()
        self.save_hyperparameters()
        if scene is None:
            raise ConfigError("the model needs the data's scene description (linked from `data` by `worldsim fit`)",
                              field="model.scene")
        if lr <= 0 or max_steps < 1 or warmup_steps < 0:
            raise ConfigError(f"need lr > 0, max_steps >= 1, warmup_steps >= 0; got {lr}, {max_steps}, {warmup_steps}",
                              field="model.lr")
        self.scene = scene
        over = dict(overrides or {})
        linked = sorted({"action_dim", "camera_classes", "param_dim", "time_reversal"} & set(over))
        if linked:  # typed twice would be two truths: the data's wins by construction
            raise ConfigError(f"{linked[0]} follows from the data (its scene, actions, cameras and data.p_reverse); "
                              "do not set it", field=f"model.overrides.{linked[0]}")
        cfg = model_config(preset, action_dim=int(scene["action_dim"]), camera_classes=len(scene["cameras"]),
                           param_dim=len(scene.get("param_names", [])),
                           time_reversal=bool(scene.get("time_reversed", False)), **over)
        if not text:
            cfg = dataclasses.replace(cfg, text=None)
        self.net = VideoDiT(cfg, name=preset)
        self.loss_cfg = loss_config(loss or {})
        self.denoiser = EDMDenoiser(self.net, self.loss_cfg.edm)
        if init_fresh and not init_weights:
            raise ConfigError("init_fresh names parts to leave out of model.init_weights, which is not set",
                              field="model.init_fresh")
        if init_weights:
            self.net.load_state_dict(initial_weights(init_weights, self.net.state_dict(), tuple(init_fresh or ())))
        if train_only:
            if not init_weights:
                raise ConfigError("train_only freezes the rest of model.init_weights, which is not set",
                                  field="model.train_only")
            names = [k for k, _ in self.net.named_parameters()]
            for prefix in train_only:
                if not any(_under(k, prefix) for k in names):
                    raise ConfigError(f"no tensor of this network is named {prefix!r} or under it",
                                      field="model.train_only")
            for k, p in self.net.named_parameters():
                p.requires_grad_(any(_under(k, q) for q in train_only))
        if warp_init is not None:
            if self.net.warp is None:
                raise ConfigError("this model has no action warp (model.overrides.action_warp: true)",
                                  field="model.warp_init")
            shape = (2, cfg.action_dim)
            try:
                per_action = torch.tensor(warp_init, dtype=torch.float32)
            except (TypeError, ValueError):
                per_action = None
            if per_action is None or per_action.shape != shape:
                raise ConfigError(f"expected {shape[0]} rows (dx, dy) of {shape[1]} px per action, got {warp_init}",
                                  field="model.warp_init")
            self.net.warp.set_pixels(per_action)

    # --- conditioning ---------------------------------------------------------------------------------------

    def cond(self, batch: dict) -> Cond:
        cfg = self.net.cfg
        return Cond(actions=batch["actions"] if cfg.action_dim else None,
                    camera_ids=batch["camera_ids"] if cfg.camera_classes else None,
                    params=batch["params"] if cfg.param_dim else None,
                    text=list(batch["caption"]) if cfg.text is not None else None,
                    reversed=batch["reversed"] if cfg.time_reversal else None)

    # --- steps ------------------------------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        seed = step_seed(self.hparams.seed, self.global_step)
        torch.manual_seed(seed)  # condition dropout inside the network draws from the global generator
        g = torch.Generator().manual_seed(seed)
        video = batch["video"]
        # The step's draws are made for the global batch and sliced per rank (see data.StepBatchSampler), so N
        # data-parallel processes compute what one process with the whole batch would.
        world, rank = self.trainer.world_size if self._trainer else 1, self.global_rank
        drawn = draw((video.shape[0] * world, *video.shape[1:]), self.loss_cfg, g).rows(slice(rank, None, world))
        value = loss(self.denoiser, video, self.cond(batch), cfg=self.loss_cfg, drawn=drawn)
        self.log("train/loss", value, prog_bar=True, batch_size=batch["video"].shape[0])
        return value

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        # Fixed noise levels and fixed noise per validation batch: the curve moves only when the weights do.
        value = fixed_grid_loss(self.denoiser, batch["video"], self.cond(batch), levels=self.hparams.val_levels,
                                cfg=self.loss_cfg, seed=batch_idx)
        B = batch["video"].shape[0]
        self.log("val/loss", value, prog_bar=True, batch_size=B)
        cfg = self.net.cfg
        if cfg.action_dim or cfg.action_classes:
            # Whether the model uses its actions at all (E47-E48 did not): the next-frame loss with them and without.
            with_, without = next_frame_losses(self.denoiser, batch["video"], self.cond(batch),
                                               levels=self.hparams.val_levels, cfg=self.loss_cfg, seed=batch_idx)
            self.log("val/next_loss", with_, batch_size=B)
            self.log("val/action_gain", 1.0 - with_ / without.clamp(min=1e-12), batch_size=B)
        if cfg.text is not None:
            # Whether the captions tell it anything (E75: the shipped models' did not): the same loss, text nulled.
            without = fixed_grid_loss(self.denoiser, batch["video"], self.cond(batch).without("text"),
                                      levels=self.hparams.val_levels, cfg=self.loss_cfg, seed=batch_idx)
            self.log("val/text_gain", 1.0 - value / without.clamp(min=1e-12), batch_size=B)
        return value

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=hp.lr,
                                weight_decay=hp.weight_decay)

        def factor(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / hp.warmup_steps
            progress = min(1.0, (step - hp.warmup_steps) / max(1, hp.max_steps - hp.warmup_steps))
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # --- figures for the throughput callback --------------------------------------------------------------------

    def tokens_per_clip(self, shape: tuple[int, int, int, int]) -> int:
        T, _, H, W = shape
        pt, ph, pw = self.net.cfg.patch
        return (T // pt) * (H // ph) * (W // pw)

    def train_flops(self, shape: tuple[int, int, int, int]) -> float:
        T, _, H, W = shape
        return flops.count(self.net, 1, (T, H, W)).train

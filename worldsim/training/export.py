"""Export a trained module's (EMA) weights to safetensors with everything a loader needs, and no Lightning."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import torch
import yaml

from worldsim.errors import WeightsError
from worldsim.models.load import save_model
from worldsim.rollout.model import check_rollout_after, check_stagger, check_steps
from worldsim.training.module import WorldModel
from worldsim.weights import load_weights, save_weights


def git_commit() -> str | None:
    """The commit of the worldsim checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def export(module: WorldModel, path: str | Path, ema: dict[str, torch.Tensor] | None = None,
           dtype: torch.dtype | None = None, config: str | None = None, data: list[str] | None = None,
           steps: int = 0, sample_steps: int | None = None, rollout_after: int | None = None,
           stagger: int | None = None) -> Path:
    """Write the network's weights (the EMA average when given) to `path` as safetensors; `sample_steps`: the
    denoising steps per frame a rollout of them takes by default (None: not recorded, so the sampler's 3);
    `rollout_after`: the frames of a `t2v` clip denoised together before the rest are rolled out (None: whole);
    `stagger`: the steps each of those frames settles behind the one before (None: not recorded, so 0)."""
    state = {k.removeprefix("net."): v for k, v in module.state_dict().items() if k.startswith("net.")}
    if ema is not None:
        state.update({k.removeprefix("net."): v for k, v in ema.items() if k.startswith("net.")})
    training = {"steps": int(steps), "config": config, "git_commit": git_commit(), "data": list(data or [])}
    return save_model(path, module.net, module.scene, dataclasses.asdict(module.loss_cfg), training, state, dtype,
                      sampler=_sampler(sample_steps, rollout_after, stagger))


def _sampler(steps: int | None, rollout_after: int | None = None, stagger: int | None = None) -> dict | None:
    """The weights' `sampler` metadata: default denoising `steps`, t2v `rollout_after` and `stagger` (None: not
    recorded)."""
    out = {} if steps is None else {"steps": check_steps(steps, field="--steps")}
    if rollout_after is not None:
        out["rollout_after"] = check_rollout_after(rollout_after, field="--rollout-after")
    if stagger is not None:
        out["stagger"] = check_stagger(stagger, field="--stagger")
    return out or None


def export_checkpoint(checkpoint: str | Path, out: str | Path, dtype: torch.dtype | None = None,
                      sample_steps: int | None = None, rollout_after: int | None = None,
                      stagger: int | None = None) -> Path:
    """Export a run's checkpoint (its EMA weights when the run kept them) to safetensors, with the run's resolved
    config and data: what `ExportOnFitEnd` writes at the end of a run, for any checkpoint along the way.

    The checkpoint is read with `weights_only=True` (no code is unpickled; worldsim's checkpoints need none)."""
    _sampler(sample_steps, rollout_after, stagger)  # a bad --steps is refused before the checkpoint is read
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise WeightsError("no such checkpoint", source=checkpoint, field="checkpoint")
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        hparams, weights = dict(state["hyper_parameters"]), state["state_dict"]
    except (KeyError, TypeError) as e:
        raise WeightsError(f"not a worldsim training checkpoint (missing {e})", source=checkpoint,
                           field="checkpoint") from None
    except Exception as e:  # torch raises RuntimeError/UnpicklingError/EOFError for torn or foreign files
        raise WeightsError(f"cannot read the checkpoint: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                           source=checkpoint, field="checkpoint") from None
    # LightningCLI adds private keys (e.g. `_instantiator`) beside the constructor's arguments; the checkpoint's
    # weights replace a fine-tuned run's starting weights, which need not be on this machine any more (and with them
    # go the settings that only make sense beside them: init_fresh, train_only).
    module = WorldModel(**{k: v for k, v in hparams.items()
                           if not k.startswith("_") and k not in ("init_weights", "init_fresh", "train_only")})
    module.load_state_dict(weights)
    ema = next((v.get("shadow") for k, v in state.get("callbacks", {}).items() if k.startswith("EMA")), None)
    run = checkpoint.parent.parent  # <run>/checkpoints/<name>.ckpt
    configs = sorted(run.glob("logs/version_*/config.yaml"), key=lambda p: int(p.parent.name.split("_")[1]))
    config = configs[-1].read_text() if configs else None
    data = ((yaml.safe_load(config) or {}).get("data") or {}).get("stores") if config else None
    return export(module, out, ema=ema, dtype=dtype, config=config, data=data, steps=int(state.get("global_step", 0)),
                  sample_steps=sample_steps, rollout_after=rollout_after, stagger=stagger)


def export_weights(weights: str | Path, out: str | Path, dtype: torch.dtype | None = None,
                   sample_steps: int | None = None, rollout_after: int | None = None,
                   stagger: int | None = None) -> Path:
    """Re-export a weights file with other default sampler steps, t2v `rollout_after` or `stagger` (None: keep its
    record) or at `dtype` (None: as stored): the tensors, model config and training record are kept, so the sampling
    chosen by evaluation after a run can be recorded without its checkpoint. `out` may be `weights` itself (replaced
    atomically)."""
    sampler = _sampler(sample_steps, rollout_after, stagger)  # a bad --steps is refused before the file is read
    tensors, meta = load_weights(weights, dtype=None)
    if sampler is not None:
        meta["sampler"] = {**(meta.get("sampler") or {}), **sampler}
    return save_weights(out, tensors, meta, dtype)

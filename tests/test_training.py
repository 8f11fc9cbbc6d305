"""Training with Lightning, end to end on CPU: `worldsim fit`, exact resume after SIGKILL, DDP on two CPU
processes, exported weights without Lightning, the GPU presets, and clear errors for bad data or config."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from worldsim.data.recorder import RecordConfig, record
from worldsim.data.store import open_store
from worldsim.errors import ConfigError, StoreError
from worldsim.weights import load_weights
from worldsim.training.data import WorldDataModule
from worldsim.training.export import export, export_checkpoint
from worldsim.training.module import WorldModel, loss_config

from conftest import ROOT

DEBUG = ROOT / "configs" / "train" / "debug.yaml"
# One thread and deterministic kernels: bit-equal runs on CPU need both (docs/training.md).
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
       "PYTHONPATH": str(ROOT / "tests" / "plugins")}  # test-only callbacks (rank_weights.py) for the subprocesses


def _record(store: Path, split: str, episodes: int, frames: int = 12, resolution=16, **kw) -> Path:
    record(RecordConfig(store=str(store), scene="bounce", split=split, episodes=episodes, frames=frames,
                        resolution=resolution, progress=False, **kw))
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "bounce16.zarr"
    _record(path, "train", 6)
    _record(path, "val", 2)
    return path


@pytest.fixture(scope="module")
def push_store(tmp_path_factory) -> Path:
    """An actuated store: clips of it cannot be played backward or mirrored."""
    path = tmp_path_factory.mktemp("data") / "push16.zarr"
    record(RecordConfig(store=str(path), scene="push", split="train", episodes=1, frames=8, resolution=16,
                        progress=False))
    return path


def fit(run: Path, store: Path, *extra: str, wait: bool = True, timeout: float = 600):
    exe = Path(sys.executable).with_name("worldsim")
    args = [str(exe), "fit", "--config", str(DEBUG), "--data.stores", f"[{store}]",
            "--trainer.default_root_dir", str(run), *extra]
    if not wait:
        return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=timeout)


def test_fit_smoke(store, tmp_path):
    res = fit(tmp_path / "run", store)
    assert res.returncode == 0, res.stdout + res.stderr
    run = tmp_path / "run"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "model.safetensors").is_file()
    log = run / "logs" / "version_0"
    assert (log / "config.yaml").is_file() and (log / "metrics.csv").is_file()
    assert list(log.glob("events.out.tfevents.*")), "no TensorBoard log"
    lines = (log / "metrics.csv").read_text().splitlines()
    assert "train/loss" in lines[0] and "val/loss" in lines[0] and len(lines) > 6
    head = lines[0].split(",")
    gains = [float(v) for row in lines[1:] if (v := row.split(",")[head.index("val/text_gain")])]
    assert gains and all(abs(g) < 1 for g in gains)  # the captions' share of the validation loss, every validation
    samples = sorted((run / "samples").glob("step_*.gif"))  # sample videos through the sampler, every 3 steps
    assert [p.name for p in samples] == ["step_000003.gif", "step_000006.gif"]
    import imageio.v3 as iio

    gif = iio.imread(samples[-1])
    assert gif.shape[0] == 4 and gif.std() > 5  # 4 frames (the debug window), not blank


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def test_resume_after_sigkill_is_bit_equal(store, tmp_path):
    """A run killed with SIGKILL mid-training and resumed from `last` ends with weights bit-equal to an
    uninterrupted run of the same length (EMA, optimizer, schedule and data position all restored)."""
    full = fit(tmp_path / "full", store)
    assert full.returncode == 0, full.stdout + full.stderr
    killed = tmp_path / "killed"
    proc = fit(killed, store, wait=False)
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=True, map_location="cpu")["global_step"] >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed:\n" + proc.stdout.read()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step = torch.load(last, weights_only=True, map_location="cpu")["global_step"]
    assert 3 <= step < 6
    resumed = fit(killed, store, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    a, b = _state(tmp_path / "full" / "model.safetensors"), _state(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_ddp_two_cpu_processes(store, tmp_path):
    """DDP with gloo on 2 CPU processes: every rank ends with the same weights, close to one process that sees the
    same global batch (batch 2 per rank vs batch 4)."""
    # Condition dropout draws inside the network, per rank (docs/scaling.md): off here so the runs compare exactly.
    save = ["--trainer.callbacks+=rank_weights.SaveRankWeights", "--model.overrides", "{cond_dropout: 0.0}"]
    # With dropout off the learned null embeddings take no part in the loss, hence find_unused_parameters.
    ddp = fit(tmp_path / "ddp", store, "--trainer.strategy", "ddp_find_unused_parameters_true", "--trainer.devices", "2", "--trainer.max_steps", "3",
              "--trainer.limit_val_batches", "0", "--checkpoint_every", "100", *save, timeout=900)
    assert ddp.returncode == 0, ddp.stdout + ddp.stderr
    single = fit(tmp_path / "single", store, "--trainer.max_steps", "3", "--data.batch_size", "4",
                 "--trainer.limit_val_batches", "0", "--checkpoint_every", "100", *save)
    assert single.returncode == 0, single.stdout + single.stderr
    ranks = sorted((tmp_path / "ddp").glob("rank*.safetensors"))
    assert len(ranks) == 2, "each rank writes its raw weights"
    r0, r1 = _state(ranks[0]), _state(ranks[1])
    one = _state(tmp_path / "single" / "rank0.safetensors")
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k
        assert torch.allclose(r0[k], one[k], atol=1e-5, rtol=1e-4), k


def test_exported_weights_load_without_lightning(store, tmp_path):
    """The export reproduces the module's (EMA) outputs in a process that never imports Lightning."""
    res = fit(tmp_path / "run", store)
    assert res.returncode == 0, res.stdout + res.stderr
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    ema = next(v["shadow"] for k, v in ckpt["callbacks"].items() if k.startswith("EMA"))
    code = f"""
import sys, torch
from worldsim.models.load import load_model
net, meta = load_model({str(tmp_path / 'run' / 'model.safetensors')!r})
assert "lightning" not in sys.modules and "worldsim.training" not in sys.modules, sorted(sys.modules)
torch.manual_seed(0)
x = torch.randn(1, 4, 3, 16, 16); noise = torch.full((1, 4), 0.3)
torch.save(net(x, noise), {str(tmp_path / 'out.pt')!r})
print(meta["scene"]["name"], meta["training"]["steps"])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["bounce", "6"]
    from worldsim.training.module import WorldModel

    module = WorldModel(**{k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")})
    module.load_state_dict({k: ema.get(k, v) for k, v in ckpt["state_dict"].items()})
    module.eval()
    torch.manual_seed(0)
    x = torch.randn(1, 4, 3, 16, 16)
    noise = torch.full((1, 4), 0.3)
    expected = module.net(x, noise)
    assert torch.equal(torch.load(tmp_path / "out.pt", weights_only=True), expected)


def test_gpu_presets_instantiate_on_meta():
    from worldsim.models.presets import build_model

    for name, (lo, hi) in {"S": (25e6, 60e6), "B": (100e6, 200e6), "L": (350e6, 600e6)}.items():
        with torch.device("meta"):
            net = build_model(name, action_dim=2, camera_classes=2)
        n = sum(p.numel() for p in net.parameters())
        assert lo < n < hi, (name, n)


def test_gpu_128px_config_runs_two_steps_at_debug_width_on_cpu(tmp_path):
    """configs/train/gpu128.yaml, shrunk to debug width and run on CPU: the config is honest."""
    store = _record(tmp_path / "b128.zarr", "train", 1, frames=6, resolution=128)
    _record(store, "val", 1, frames=6, resolution=128)
    exe = Path(sys.executable).with_name("worldsim")
    res = subprocess.run([str(exe), "fit", "--config", str(ROOT / "configs" / "train" / "gpu128.yaml"),
                          "--data.stores", f"[{store}]", "--trainer.default_root_dir", str(tmp_path / "run"),
                          "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto",
                          "--trainer.precision", "32", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0",
                          "--model.overrides", "{width: 32, depth: 1, heads: 2}", "--data.batch_size", "1",
                          "--data.windows", "[4]"],
                         capture_output=True, text=True, env=ENV, timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_export_command_reproduces_the_end_of_run_export(store, tmp_path, run_cli):
    """`worldsim export last.ckpt` writes the same EMA weights and metadata as the run's own export; --fp16 halves
    them; a weights file is re-exported with other steps; a torn or missing checkpoint or weights file is one clear
    line naming the file."""
    run = tmp_path / "run"
    res = fit(run, store)
    assert res.returncode == 0, res.stdout + res.stderr
    ckpt = run / "checkpoints" / "last.ckpt"
    out = run_cli("export", str(ckpt), "--out", str(tmp_path / "again.safetensors"))
    assert out.returncode == 0, out.stderr
    a, b = _state(run / "model.safetensors"), _state(tmp_path / "again.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from worldsim.weights import read_meta

    meta, again = read_meta(run / "model.safetensors"), read_meta(tmp_path / "again.safetensors")
    for key in ("model", "scene", "loss"):
        assert meta[key] == again[key], key
    assert again["training"]["steps"] == 6 and again["training"]["data"] == [str(store)]
    assert again["training"]["config"] == meta["training"]["config"]
    assert "sampler" not in again  # no default steps recorded unless asked: the sampler's 3
    half = run_cli("export", str(ckpt), "--out", str(tmp_path / "half.safetensors"), "--fp16", "--steps", "2")
    assert half.returncode == 0, half.stderr
    h = _state(tmp_path / "half.safetensors")
    assert all(v.dtype == torch.float16 for v in h.values() if v.is_floating_point())
    assert all(torch.allclose(h[k].float(), a[k], atol=1e-3, rtol=1e-2) for k in a)
    assert read_meta(tmp_path / "half.safetensors")["sampler"] == {"steps": 2}
    zero = run_cli("export", str(ckpt), "--out", str(tmp_path / "zero.safetensors"), "--steps", "0")
    assert zero.returncode != 0 and "--steps" in zero.stderr and "Traceback" not in zero.stderr, zero.stderr
    assert not (tmp_path / "zero.safetensors").exists()
    # a weights file is re-exported as stored (fp16 stays fp16, bit for bit) with other steps, in place
    before = read_meta(tmp_path / "half.safetensors")
    restamp = run_cli("export", str(tmp_path / "half.safetensors"), "--out", str(tmp_path / "half.safetensors"),
                      "--steps", "4")
    assert restamp.returncode == 0, restamp.stderr
    after, h4 = read_meta(tmp_path / "half.safetensors"), _state(tmp_path / "half.safetensors")
    assert after["sampler"] == {"steps": 4} and {k: v for k, v in after.items() if k != "sampler"} == {
        k: v for k, v in before.items() if k != "sampler"}
    assert h4.keys() == h.keys() and all(h4[k].dtype == h[k].dtype and torch.equal(h4[k], h[k]) for k in h)
    keep = run_cli("export", str(tmp_path / "half.safetensors"), "--out", str(tmp_path / "kept.safetensors"))
    assert keep.returncode == 0 and read_meta(tmp_path / "kept.safetensors")["sampler"] == {"steps": 4}, keep.stderr
    # t2v's rollout_after is recorded beside the steps, and each is kept when only the other is given
    after8 = run_cli("export", str(tmp_path / "kept.safetensors"), "--out", str(tmp_path / "kept.safetensors"),
                     "--rollout-after", "8")
    assert after8.returncode == 0, after8.stderr
    assert read_meta(tmp_path / "kept.safetensors")["sampler"] == {"steps": 4, "rollout_after": 8}
    bad = run_cli("export", str(tmp_path / "kept.safetensors"), "--out", str(tmp_path / "y.safetensors"),
                  "--rollout-after", "0")
    assert bad.returncode != 0 and "--rollout-after" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    assert not (tmp_path / "y.safetensors").exists()
    torn_w = tmp_path / "torn.safetensors"
    torn_w.write_bytes((tmp_path / "half.safetensors").read_bytes()[:-100])
    res = run_cli("export", str(torn_w), "--out", str(tmp_path / "x.safetensors"), "--steps", "2")
    assert res.returncode != 0 and str(torn_w) in res.stderr and "Traceback" not in res.stderr, res.stderr
    torn = tmp_path / "torn.ckpt"
    torn.write_bytes(ckpt.read_bytes()[:1000])
    for bad in (torn, tmp_path / "absent.ckpt"):
        res = run_cli("export", str(bad), "--out", str(tmp_path / "x.safetensors"))
        assert res.returncode != 0 and str(bad) in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_pixel_budget_sizes_each_bucket(store, tmp_path):
    """With `pixels_per_batch`, a 16x16 bucket gets 4x the clips of a 32x32 one and 16-frame windows half those of
    8-frame ones; every clip of a batch has the bucket's size, and the draw is a function of (seed, step)."""
    from worldsim.training.data import WorldDataModule, bucket_batch_size

    big = _record(tmp_path / "b32.zarr", "train", 2, resolution=32)
    _record(big, "val", 1, resolution=32)
    dm = WorldDataModule([str(store), str(big)], windows=[4, 8], pixels_per_batch=8 * 32 * 32, seed=3, max_steps=40)
    dm.setup("fit")
    sizes = {(tuple(dm.train_parts[b.store].resolution), b.window): b.batch_size for b in dm.train_buckets}
    assert sizes == {((16, 16), 4): 8, ((16, 16), 8): 4, ((32, 32), 4): 2, ((32, 32), 8): 1}
    seen = set()
    for batch in dm.train_dataloader():
        T, _, H, W = batch["video"].shape[1:]
        assert batch["video"].shape[0] == sizes[((H, W), T)]
        seen.add(((H, W), T))
    assert len(seen) == 4, seen
    again = WorldDataModule([str(store), str(big)], windows=[4, 8], pixels_per_batch=8 * 32 * 32, seed=3, max_steps=40)
    again.setup("fit")
    first = next(iter(again.train_dataloader()))
    assert torch.equal(first["video"], next(iter(dm.train_dataloader()))["video"])
    assert bucket_batch_size(8, None, 16, (64, 64)) == 8 and bucket_batch_size(8, 100, 16, (64, 64)) == 1


# --- bad input ----------------------------------------------------------------------------------------------------


def test_unknown_config_key(store, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEBUG.read_text().replace("  lr: 0.001", "  lr: 0.001\n  learning_rate: 0.1"))
    exe = Path(sys.executable).with_name("worldsim")
    res = subprocess.run([str(exe), "fit", "--config", str(bad), "--data.stores", f"[{store}]"],
                         capture_output=True, text=True, env=ENV, cwd=tmp_path)
    assert res.returncode != 0
    assert "learning_rate" in res.stderr and "Traceback" not in res.stderr


def test_unknown_loss_keys_name_their_section():
    assert loss_config({"fade": {"p": 0.5}}).fade.p == 0.5
    assert loss_config({"own_context": {"p": 0.5, "frames": 2}}).own_context.frames == 2
    for given, where in (({"fade": {"alpha": 0.3}}, "model.loss.fade.alpha"),
                         ({"own_context": {"steps_": 3}}, "model.loss.own_context.steps_"),
                         ({"edm": {"pmean": 0}}, "model.loss.edm.pmean"), ({"fading": {}}, "model.loss.fading")):
        with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
            loss_config(given)


def test_a_key_deep_inside_a_mapping_is_refused_before_anything_runs():
    """`--model.loss.edm.p_mean 1.0` would reach the model as `edm: {p_mean: "1.0"}`, edm's other settings dropped
    (jsonargparse replaces the inner mapping): refused naming the key and the whole-mapping form; a key one level in
    (which jsonargparse merges) and the whole mapping pass this check."""
    from worldsim.training.cli import check_deep_overrides, run

    for args, key in ((["--model.loss.edm.p_mean", "1.0"], "model.loss.edm.p_mean"),
                      (["--model.overrides.text.width=96"], "model.overrides.text.width")):
        with pytest.raises(ConfigError, match=re.escape(key)) as err:
            run(["--config", str(DEBUG), *args])
        assert f"--{key.rsplit('.', 1)[0]} '{{" in str(err.value)
    check_deep_overrides(["--model.loss.p_context", "0.5", "--model.loss.edm", "{p_mean: 1.0}", "--data.shares.a=1"])


def test_fine_tuning_starts_from_the_given_weights(store, tmp_path):
    """`model.init_weights` loads an exported file (or a shipped scene) into the network; a network of another shape,
    a damaged file or an unknown name is an error naming the field and the file; the run's own checkpoint exports
    without the starting file."""
    scene = WorldDataModule(stores=[str(store)], windows=[4], batch_size=2).describe()
    torch.manual_seed(1)
    first = WorldModel(preset="debug", scene=scene)
    weights = export(first, tmp_path / "first.safetensors")
    torch.manual_seed(2)
    tuned = WorldModel(preset="debug", scene=scene, init_weights=str(weights))
    fresh = WorldModel(preset="debug", scene=scene)
    for name, p in first.net.state_dict().items():
        assert torch.equal(tuned.net.state_dict()[name], p), name
    qkv = "blocks.0.attn.qkv.weight"
    assert not torch.equal(fresh.net.state_dict()[qkv], first.net.state_dict()[qkv])  # the seeds do differ
    with pytest.raises(ConfigError, match=r"model\.init_weights.*tensor 'blocks\.2\."):
        WorldModel(preset="debug", scene=scene, overrides={"depth": 3}, init_weights=str(weights))
    # the tensors a file may lack: the `future` and time-direction embeddings, which then start at zero (the
    # file's function); the direction's is built when the data plays clips backward
    ahead = WorldModel(preset="debug", scene={**scene, "time_reversed": True}, overrides={"future": 2},
                       init_weights=str(weights))
    assert not ahead.net.embed_future.weight.any() and not ahead.net.cond.direction.weight.any()
    assert all(torch.equal(ahead.net.state_dict()[k], v) for k, v in first.net.state_dict().items())
    # a longer text `max_len`: the file's position embeddings for the first bytes, fresh ones after them; a
    # shorter one is another network
    text = {"width": 32, "depth": 1, "heads": 2}
    longer = WorldModel(preset="debug", scene=scene, overrides={"text": {**text, "max_len": 96}},
                        init_weights=str(weights))
    pos = first.net.state_dict()["cond.text.pos"]                                           # (64, 32)
    assert longer.net.cond.text.pos.shape == (96, 32)
    assert torch.equal(longer.net.cond.text.pos[:64], pos) and longer.net.cond.text.pos[64:].std() > 0
    with pytest.raises(ConfigError, match=r"model\.init_weights.*tensor 'cond\.text\.pos'"):
        WorldModel(preset="debug", scene=scene, overrides={"text": {**text, "max_len": 32}}, init_weights=str(weights))
    # parts named in `init_fresh` keep this run's draw, in any shape: a new caption encoder beside the file's network
    torch.manual_seed(3)
    wider = {"text": {"width": 48, "depth": 2, "heads": 2, "max_len": 64}}
    drawn = WorldModel(preset="debug", scene=scene, overrides=wider).net.state_dict()
    torch.manual_seed(3)
    new_text = WorldModel(preset="debug", scene=scene, overrides=wider, init_weights=str(weights),
                          init_fresh=["cond.text", "cond.text_proj"]).net.state_dict()
    for name, p in new_text.items():
        mine = name.startswith(("cond.text.", "cond.text_proj."))
        assert torch.equal(p, drawn[name] if mine else first.net.state_dict()[name]), name
    # the caption's facts beside the file's text encoder (E77): its own draw, output layer zero (the file's function)
    with_facts = WorldModel(preset="debug", scene=scene, overrides={"text": {**text, "max_len": 64, "facts": 2}},
                            init_weights=str(weights), init_fresh=["cond.facts"]).net.state_dict()
    assert all(torch.equal(with_facts[k], v) for k, v in first.net.state_dict().items())
    assert not with_facts["cond.facts.2.weight"].any() and with_facts["cond.facts.0.weight"].std() > 0
    with pytest.raises(ConfigError, match=r"model\.init_weights.*tensor 'cond\.facts\.0\.bias' is absent"):
        WorldModel(preset="debug", scene=scene, overrides={"text": {**text, "max_len": 64, "facts": 2}},
                   init_weights=str(weights))
    # `train_only`: the named parts train, the rest keeps the file's weights (and the optimizer holds only them)
    facts_only = WorldModel(preset="debug", scene=scene, overrides={"text": {**text, "max_len": 64, "facts": 2}},
                            init_weights=str(weights), init_fresh=["cond.facts"], train_only=["cond.facts"])
    trained = {k for k, p in facts_only.net.named_parameters() if p.requires_grad}
    assert trained and all(k.startswith("cond.facts.") for k in trained)
    opt = facts_only.configure_optimizers()["optimizer"]
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(
        p.numel() for p in facts_only.net.parameters() if p.requires_grad)
    with pytest.raises(ConfigError, match=r"model\.train_only.*'cond\.fact'"):
        WorldModel(preset="debug", scene=scene, init_weights=str(weights), train_only=["cond.fact"])
    with pytest.raises(ConfigError, match=r"model\.train_only.*not set"):
        WorldModel(preset="debug", scene=scene, train_only=["cond.text"])
    with pytest.raises(ConfigError, match=r"model\.init_fresh.*'cond\.txt'"):
        WorldModel(preset="debug", scene=scene, init_weights=str(weights), init_fresh=["cond.txt"])
    with pytest.raises(ConfigError, match=r"model\.init_fresh.*not set"):
        WorldModel(preset="debug", scene=scene, init_fresh=["cond.text"])
    with pytest.raises(ConfigError, match=r"model\.overrides\.time_reversal.*data\.p_reverse"):
        WorldModel(preset="debug", scene=scene, overrides={"time_reversal": True})  # the data's to say
    with pytest.raises(ConfigError, match="neither a weights file nor a shipped scene"):
        WorldModel(preset="debug", scene=scene, init_weights="no_such_scene")
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ConfigError, match=r"damaged\.safetensors.*model\.init_weights"):
        WorldModel(preset="debug", scene=scene, init_weights=str(damaged))
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"hyper_parameters": dict(tuned.hparams), "state_dict": tuned.state_dict()}, ckpt)
    weights.unlink()
    _, meta = load_weights(export_checkpoint(ckpt, tmp_path / "out.safetensors"))
    assert meta["scene"]["name"] == "bounce"


def test_resume_with_other_model_settings_is_an_error(store, tmp_path):
    """Resuming keeps the checkpoint's model: a config that differs names the field, for a path and for `last`;
    a checkpoint that cannot be read names the file."""
    model = yaml.safe_load(DEBUG.read_text())["model"]
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"hyper_parameters": {**model, "lr": 0.5, "max_steps": 3}}, ckpt)
    for given in (str(ckpt), "last"):
        res = fit(tmp_path / "run", store, "--ckpt_path", given)
        assert res.returncode != 0
        assert "model.lr" in res.stderr and "0.5" in res.stderr and "Traceback" not in res.stderr
    ckpt.write_bytes(b"PK\x03\x04 truncated")
    res = fit(tmp_path / "run", store, "--ckpt_path", "last")
    assert res.returncode != 0 and "last.ckpt" in res.stderr and "Traceback" not in res.stderr


def test_occlusion_share_draws_windows_that_hold_a_whole_occlusion(tmp_path):
    """`data.occlusion_share: 1` draws only windows in which an object is seen, hidden and seen again (checked on the
    stored visible fractions, not on the events the sampler read); 0 draws windows without one too; a window too
    short to hold an occlusion is an error naming the setting."""
    from worldsim.data.store import open_store

    path = tmp_path / "occlusion16.zarr"
    record(RecordConfig(store=str(path), scene="occlusion", split="train", episodes=4, frames=75, resolution=16,
                        policy="zero", progress=False))
    store = open_store(path)
    ids = store.committed("train")
    visible = [store.episode("train", int(i), ["object_visible"])["object_visible"] for i in ids]  # (T, K) each

    def whole_occlusion(e: int, s: int, T: int) -> bool:
        v = visible[e][s : s + T]  # (T, K)
        for k in range(v.shape[1]):
            seen = np.flatnonzero(v[:, k] > 0.2)
            hidden = np.flatnonzero(v[:, k] < 0.02)
            if any(seen[0] < h < seen[-1] for h in hidden) if len(seen) else False:
                return True
        return False

    def held(share: float) -> list[bool]:
        dm = WorldDataModule(stores=[str(path)], windows=[16], batch_size=4, val_batches=0, occlusion_share=share)
        dm.setup("fit")
        sampler = dm.train_dataloader().batch_sampler
        (bucket,) = dm.train_buckets
        return [whole_occlusion(int(bucket.episodes[w]), int(bucket.starts[w]), 16)
                for step in range(25) for _, w in sampler.batch(step)]

    assert all(held(1.0))
    assert not all(held(0.0))
    with pytest.raises(ConfigError, match=r"data\.occlusion_share"):
        WorldDataModule(stores=[str(path)], windows=[2], val_batches=0, occlusion_share=0.5).setup("fit")
    with pytest.raises(ConfigError, match=r"data\.occlusion_share"):
        WorldDataModule(stores=[str(path)], occlusion_share=1.5)


def test_push_share_draws_windows_in_which_an_agent_moves_an_object(tmp_path):
    """`data.push_share: 1` draws only windows in which a block moves after the window's first frame (checked on the
    stored world positions, not on the `push` events the sampler read); 0 draws windows where none moves too; with
    `occlusion_share` the shares may not add up past 1; a window too short to hold a push names the setting."""
    from worldsim.data.store import open_store

    path = tmp_path / "push16.zarr"
    record(RecordConfig(store=str(path), scene="push", split="train", episodes=3, frames=48, resolution=16,
                        policy="scripted", progress=False))
    store = open_store(path)
    pos = [store.episode("train", int(i), ["object_pos"])["object_pos"] for i in store.committed("train")]  # (T, K, 3)
    T = 8

    def block_moves(e: int, s: int) -> bool:
        step = np.linalg.norm(np.diff(pos[e][s : s + T, 1:, :2], axis=0), axis=-1)  # (T-1, blocks) m per frame
        return bool((step > 1e-3).any())

    def moved(share: float) -> list[bool]:
        dm = WorldDataModule(stores=[str(path)], windows=[T], batch_size=4, val_batches=0, push_share=share)
        dm.setup("fit")
        sampler = dm.train_dataloader().batch_sampler
        (bucket,) = dm.train_buckets
        return [block_moves(int(bucket.episodes[w]), int(bucket.starts[w])) for step in range(25)
                for _, w in sampler.batch(step)]

    assert all(moved(1.0))
    assert not all(moved(0.0))
    with pytest.raises(ConfigError, match=r"data\.push_share"):
        WorldDataModule(stores=[str(path)], windows=[3], val_batches=0, push_share=0.5).setup("fit")
    with pytest.raises(ConfigError, match=r"data\.push_share"):
        WorldDataModule(stores=[str(path)], occlusion_share=0.6, push_share=0.6)


def test_start_share_draws_clips_from_the_episodes_first_frames(store):
    """`data.start_share: 1` gives clips whose frames are their episode's first frames (checked on the frames the
    dataset returns against the store's); 0 draws later windows too; the shares may not add up past 1 and the error
    names the setting."""
    from worldsim.data.store import open_store

    st = open_store(store)
    first = {int(e): st.episode("train", int(i), ["frames"])["frames"][:8]
             for e, i in enumerate(st.committed("train"))}  # (8, H, W, 3) uint8 each

    def from_start(share: float) -> list[bool]:
        dm = WorldDataModule(stores=[str(store)], windows=[8], batch_size=4, val_batches=0, start_share=share)
        dm.setup("fit")
        sampler, ds = dm.train_dataloader().batch_sampler, dm.train_dataloader().dataset
        out = []
        for step in range(10):
            for item in sampler.batch(step):
                clip = ds[item]
                frames = ((clip["video"].permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
                e = int(dm.train_buckets[item[0]].episodes[item[1]])
                out.append(np.array_equal(frames, first[e]))
        return out

    assert all(from_start(1.0))
    assert not all(from_start(0.0))
    with pytest.raises(ConfigError, match=r"data\.start_share"):
        WorldDataModule(stores=[str(store)], occlusion_share=0.5, start_share=0.6)
    with pytest.raises(ConfigError, match=r"data\.start_share"):
        WorldDataModule(stores=[str(store)], start_share=-0.1)


def test_reversed_clips_play_backward_without_their_caption(store, push_store):
    """`data.p_reverse` plays that share of training clips backward (frames and cameras reversed, caption None: the
    text's null embedding), drawn from (seed, step) like the windows, never in validation; the weights remember it
    (`time_reversed`); an actuated store is refused, naming the setting and the store; a share outside [0, 1] too."""
    def batches(p: float) -> tuple[WorldDataModule, list[list[tuple]]]:
        dm = WorldDataModule(stores=[str(store)], windows=[6], batch_size=4, val_batches=2, p_reverse=p)
        dm.setup("fit")
        return dm, [dm.train_dataloader().batch_sampler.batch(step) for step in range(20)]

    dm, drawn = batches(0.5)
    items = [it for b in drawn for it in b]
    flips = [it[2] for it in items]
    assert 0.3 < np.mean(flips) < 0.7
    assert batches(0.5)[1] == drawn  # a function of (seed, step)
    assert [(b, w) for b, w, _ in items] == [it for b in batches(0.0)[1] for it in b]  # same windows as without
    ds = dm.train_dataloader().dataset
    b, w, _ = items[0]
    fwd, back = ds[(b, w, False)], ds[(b, w, True)]
    assert torch.equal(back["video"], fwd["video"].flip(0)) and not torch.equal(back["video"], fwd["video"])
    assert torch.equal(back["camera_ids"], fwd["camera_ids"].flip(0))
    assert fwd["caption"] and back["caption"] is None and back["reversed"] and not fwd["reversed"]
    assert all(len(it) == 2 for it in dm.val_dataloader().batch_sampler.batch(0))
    assert WorldDataModule(stores=[str(store)], val_batches=0).val_dataloader() == []  # no validation at all
    assert dm.describe()["time_reversed"] and not batches(0.0)[0].describe()["time_reversed"]
    with pytest.raises(ConfigError, match=r"push16\.zarr.*data\.p_reverse"):
        WorldDataModule(stores=[str(push_store)], p_reverse=0.5).describe()
    with pytest.raises(ConfigError, match=r"data\.p_reverse"):
        WorldDataModule(stores=[str(store)], p_reverse=-0.1)


def test_mirrored_clips_flip_left_to_right_without_their_caption(store, push_store, tmp_path):
    """`data.p_mirror` flips that share of training clips left to right (caption None, no flag), drawn from (seed,
    step) after the windows and reverse flags, which stay as without it; never in validation. A store whose
    background is not the same mirrored (`parabola` seen by its tilted camera) is refused, as is an actuated one."""
    def batches(**kw) -> tuple[WorldDataModule, list[list[tuple]]]:
        dm = WorldDataModule(stores=[str(store)], windows=[6], batch_size=4, val_batches=2, **kw)
        dm.setup("fit")
        return dm, [dm.train_dataloader().batch_sampler.batch(step) for step in range(20)]

    dm, drawn = batches(p_mirror=0.5, p_reverse=0.5)
    items = [it for b in drawn for it in b]
    assert 0.3 < np.mean([it[3] for it in items]) < 0.7
    assert [it[:3] for it in items] == [it for b in batches(p_reverse=0.5)[1] for it in b]
    assert batches(p_mirror=0.5, p_reverse=0.5)[1] == drawn
    ds = dm.train_dataloader().dataset
    b, w = items[0][:2]
    plain, mirrored = ds[(b, w)], ds[(b, w, False, True)]
    assert torch.equal(mirrored["video"], plain["video"].flip(-1)) and not torch.equal(mirrored["video"],
                                                                                        plain["video"])
    assert plain["caption"] and mirrored["caption"] is None and not mirrored["reversed"]
    assert torch.equal(ds[(b, w, True, True)]["video"], plain["video"].flip(0).flip(-1))
    assert all(len(it) == 2 for it in dm.val_dataloader().batch_sampler.batch(0))
    assert not batches(p_mirror=0.5)[0].describe()["time_reversed"]  # no flag: the weights need nothing new
    tilted = tmp_path / "parabola_tilted.zarr"
    for split in ("train", "val"):
        record(RecordConfig(store=str(tilted), scene="parabola", split=split, episodes=2, frames=8, resolution=16,
                            camera="tilted", policy="zero", progress=False))
    with pytest.raises(ConfigError, match=r"parabola_tilted\.zarr.*data\.p_mirror"):
        WorldDataModule(stores=[str(tilted)], windows=[4], p_mirror=0.5).setup("fit")
    WorldDataModule(stores=[str(tilted)], windows=[4]).setup("fit")  # without mirrored clips it is a fine store
    with pytest.raises(ConfigError, match=r"push16\.zarr.*data\.p_mirror"):
        WorldDataModule(stores=[str(push_store)], p_mirror=0.5).describe()
    with pytest.raises(ConfigError, match=r"data\.p_mirror"):
        WorldDataModule(stores=[str(store)], p_mirror=1.5)


def test_window_captions_describe_each_clip_from_its_own_first_frame(tmp_path):
    """`data.window_captions` captions a clip as a clip of its own: the objects where the store has them on the
    clip's first frame, its events renumbered from 0 and no others; without it every clip of an episode has the
    episode's caption. The weights remember which (`window_captions`)."""
    path = _record(tmp_path / "bounce16.zarr", "train", 2, frames=24)
    episode = open_store(path).episode("train", 0, ["object_pos", "caption", "caption_events"])
    T = 8
    dm = WorldDataModule(stores=[str(path)], windows=[T], batch_size=2, val_batches=0, window_captions=True)
    dm.setup("fit")
    ds, bucket = dm.train_dataloader().dataset, dm.train_buckets[0]
    assert dm.describe()["window_captions"]
    seen = set()
    for w in np.flatnonzero(bucket.episodes == 0):
        s, text = int(bucket.starts[w]), ds[(0, int(w))]["caption"]
        assert text.startswith(f"Scene bounce, frames 0 to {T - 1}, camera front.")
        x, z = episode["object_pos"][s, 0, [0, 2]]
        assert f"is at x {x:.2f} m, z {z:.2f} m" in text  # the first ball where it is on the clip's first frame
        inside = [e["frame"] - s for e in episode["caption_events"]
                  if s <= e["frame"] < s + T and not (e["type"] == "shot" and e["frame"] == s)]  # the header's camera
        assert [int(f) for f in re.findall(r"Frame (\d+):", text)] == sorted(inside)
        seen.add(text)
    assert len(seen) > 1  # the clips of one episode are told apart
    plain = WorldDataModule(stores=[str(path)], windows=[T], batch_size=2, val_batches=0)
    plain.setup("fit")
    assert not plain.describe()["window_captions"]
    assert {plain.train_dataloader().dataset[(0, int(w))]["caption"]
            for w in np.flatnonzero(plain.train_buckets[0].episodes == 0)} == {episode["caption"]}


def test_stores_of_different_frame_skip(store, tmp_path):
    other = _record(tmp_path / "fs.zarr", "train", 1, frame_skip=100)
    _record(other, "val", 1, frame_skip=100)
    from worldsim.training.data import WorldDataModule

    dm = WorldDataModule([str(store), str(other)], windows=[4])
    with pytest.raises(StoreError) as e:
        dm.setup("fit")
    assert "frame_skip" in str(e.value) and str(other) in str(e.value)


def test_episode_shorter_than_window(store):
    from worldsim.training.data import WorldDataModule

    dm = WorldDataModule([str(store)], windows=[40])
    with pytest.raises(StoreError) as e:
        dm.setup("fit")
    assert "40 frames" in str(e.value) and "data.windows" in str(e.value)


def test_empty_split(store):
    from worldsim.training.data import WorldDataModule

    dm = WorldDataModule([str(store)], windows=[4], val_split="test")
    with pytest.raises(StoreError) as e:
        dm.setup("fit")
    assert "test" in str(e.value) and str(store) in str(e.value)

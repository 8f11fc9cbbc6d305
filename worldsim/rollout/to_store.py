"""Batch generation into a zarr store in the recording schema (docs/data.md), marked as generated, for downstream
training of policies on imagined data.

Each episode starts from k real context frames (fresh MuJoCo states drawn like the recorder's, or the first k
frames of a store's episodes), then the world model rolls out the remaining frames under given actions
((E, frames - 1, A): action applied after frame t), the source store's recorded actions, or a recorder policy
(`smooth`, `uniform`, `zero`; worldsim/data/policies.py) drawn from the recorder's per-episode seeds.
Episodes are rolled out `batch` at a time (one network call per denoising step for the whole batch).

What the arrays hold for generated frames (frames >= k; the split attribute `generated.context_frames` = k):

| array                                    | context frames (real)   | generated frames                          |
|------------------------------------------|-------------------------|-------------------------------------------|
| frames, actions, camera, time            | as recorded             | generated frame; its action; camera; t/fps |
| ctrl                                     | MuJoCo's                | the action applied (velocity commands)    |
| object_pos, object_centroid              | MuJoCo's                | read from the frame (reward.py); 0 if not found |
| rewards, terminations                    | MuJoCo's (store) / read | the scene's reward on read positions; False |
| qpos, qvel, object_vel, object_visible   | MuJoCo's                | NaN: unknown (there is no simulator state) |
| intrinsics, extrinsics, object_active    | MuJoCo's                | the (fixed) camera's; the start's          |
| caption, caption_events                  | '' and '[]': a generated episode's events are not known   |

The root attribute `generated` is True and the split attribute `generated` records the weights (file name and
SHA-256), the rollout settings, the source and the policy.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from worldsim.data.claims import NoClaims
from worldsim.data.schema import ARRAY_SPECS, SCHEMA_NAME, SCHEMA_VERSION
from worldsim.data.source import params_json
from worldsim.data.store import chunk_frames, open_store, prepare, slot_frames
from worldsim.data.writer import EpisodeWriter
from worldsim.errors import ConfigError
from worldsim.rollout import starts
from worldsim.rollout.autoregressive import Rollout, RolloutConfig
from worldsim.rollout.model import WorldModel
from worldsim.rollout.reward import SceneReader


def weights_sha(path: str) -> str | None:
    try:
        from safetensors.torch import safe_open

        with safe_open(path, framework="pt") as f:
            return (f.metadata() or {}).get("sha256")
    except Exception:  # an in-memory model has no file
        return None


def _root_attrs(env, frames: int, seed: int) -> dict:
    from worldsim import __version__

    h, w = env.height, env.width
    chunk = chunk_frames(frames, h, w)
    m = env.model
    return {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "worldsim_version": __version__,
            "scene": env.scene.spec.name, "source": "scene", "resolution": [h, w], "fps": float(env.metadata["render_fps"]),
            "frame_skip": int(env.frame_skip), "timestep": float(m.opt.timestep), "frames_per_episode": frames,
            "chunk_frames": chunk, "slot_frames": slot_frames(frames, chunk), "cameras": list(env.scene.spec.cameras),
            "objects": [o.name for o in env.scene.spec.objects], "nq": m.nq, "nv": m.nv, "nu": m.nu, "rewards": True,
            "action_low": [float(v) for v in env.action_space.low], "action_high": [float(v) for v in env.action_space.high],
            "seed": seed, "holdout": None, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "generated": True}


def generate_store(model: WorldModel, out: str | Path, *, episodes: int, frames: int, context: int | None = None,
                   source: str = "mujoco", source_split: str = "test", actions=None, policy: str = "smooth",
                   policy_options: dict | None = None, split: str = "train", seed: int = 0, resolution=None,
                   camera: str | None = None, config: RolloutConfig = RolloutConfig(), batch: int = 8,
                   progress: bool = False) -> Path:
    """Write `episodes` generated episodes of `frames` frames into split `split` of the store `out` (module doc).

    `source`: "mujoco" (fresh states, the recorder's seeds for (seed, split, index)) or a store path;
    `actions`: (episodes, frames - 1, A) array, "store" (the source store's), or None (draw with `policy`)."""
    from worldsim.data import policies, splits
    from worldsim.sim.scene_env import SceneEnv

    sm = model.scene
    hw = model.resolution(resolution)
    camera = camera or sm.cameras[0]
    model.check(camera=camera)
    k = int(context or max(1, sm.train_frames - 1))
    for name, v in (("episodes", episodes), ("frames", frames), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"must be a positive integer, got {v!r}", field=name)
    if frames <= k:
        raise ConfigError(f"episodes of {frames} frames leave nothing to generate after {k} context frames",
                          field="frames")
    splits.check_split_name(split)
    A = sm.action_dim
    from_store = isinstance(actions, str)
    if from_store and actions != "store":
        raise ConfigError(f"actions must be an array or 'store', got {actions!r}", field="actions")
    if actions is not None and not from_store:
        actions = model.check_actions(actions, episodes, frames - 1)
    store_src = None if source == "mujoco" else open_store(source)
    if from_store and store_src is None:
        raise ConfigError("actions='store' needs a store as the source", field="actions")
    env = SceneEnv(sm.name, resolution=hw, camera=camera, frame_skip=sm.frame_skip)
    reader = SceneReader(sm.name, hw, camera)
    pol = policies.make_policy(policy, policy_options) if actions is None else None
    split_attrs = {"split": split, "split_id": splits.split_id(split), "distribution": "id", "ranges": {},
                   "policy": {"name": "given" if actions is not None else policy, "options": policy_options or {}},
                   "reset_options": {}}
    prepare(out, _root_attrs(env, frames, seed), split, split_attrs, episodes, NoClaims())
    writer = EpisodeWriter(out, split)
    group = writer.group
    group.attrs["generated"] = {"weights": Path(model.source).name, "sha256": weights_sha(model.source),
                                "context_frames": k, "steps": config.resolved(model).steps, "sampler": config.sampler,
                                "window": config.window, "context_sigma": config.context_sigma,
                                "source": "mujoco" if store_src is None else str(source)}
    try:
        bar = tqdm(total=episodes * (frames - k), unit="frame", desc=f"generate {sm.name} {split}",
                   disable=not progress)
        for b0 in range(0, episodes, batch):
            idx = list(range(b0, min(episodes, b0 + batch)))
            sts, acts, real, env_seeds = [], [], [], []
            for i in idx:
                seeds = splits.episode_seeds(seed, split, i)
                if store_src is None:
                    st = starts.from_mujoco(env, seeds.env, k)
                    real.append(_mujoco_rows(st))
                    env_seeds.append(seeds.env)
                else:
                    st = starts.from_store(source, source_split, int(store_src.committed(source_split)[i]), 0, k)
                    real.append(None)
                    env_seeds.append(0)
                sts.append(st)
                acts.append(_episode_actions(i, frames, k, A, actions, pol, seeds, env, store_src, source_split,
                                             store_src.committed(source_split)[i] if store_src else None))
            acts = np.stack(acts)                                                            # (b, frames - 1, A)
            roll = Rollout(model, np.stack([s.frames for s in sts]), actions=np.stack([s.actions for s in sts]),
                           cameras=camera, params=[s.params for s in sts] if model.net.cfg.param_dim else None,
                           config=config, seed=seed * 1_000_003 + b0, resolution=hw)
            gen = []
            for t in range(k, frames):
                gen.append(roll.step(acts[:, t - 1]))
                bar.update(len(idx))
            gen = np.stack(gen, 1)                                                           # (b, frames - k, ...)
            for j, i in enumerate(idx):
                _write_episode(writer, reader, i, sts[j], real[j], gen[j], acts[j], frames, k, env, env_seeds[j])
        bar.close()
    finally:
        env.close()
    return Path(out)


def _episode_actions(i, frames, k, A, actions, pol, seeds, env, store_src, split, index) -> np.ndarray:
    if isinstance(actions, np.ndarray):
        return actions[i]
    if isinstance(actions, str):  # "store": the source episode's recorded actions
        ep = store_src.episode(split, int(index), ["actions"])
        a = np.zeros((frames - 1, A), np.float32)
        n = min(frames - 1, len(ep["actions"]))
        a[:n] = ep["actions"][:n]
        return a
    act = pol.episode(seeds.policy, env.action_space, env.scene.spec.name)
    return np.stack([act(t, {}) for t in range(frames - 1)]).astype(np.float32).reshape(frames - 1, A)


def _mujoco_rows(st: starts.Start) -> dict:
    keys = ("qpos", "qvel", "ctrl", "object_pos", "object_vel", "object_centroid", "object_visible", "intrinsics",
            "extrinsics")
    return {key: np.stack([info[key] for info in st.infos]) for key in keys}


def _write_episode(writer: EpisodeWriter, reader: SceneReader, index: int, st: starts.Start, real: dict | None,
                   gen: np.ndarray, actions: np.ndarray, frames: int, k: int, env, env_seed: int) -> None:
    chunk, slot = writer.chunk, writer.slot
    all_frames = np.concatenate([st.frames, gen])                                            # (frames, H, W, 3)
    buf = np.zeros((slot, *all_frames.shape[1:]), np.uint8)
    buf[:frames] = all_frames
    for r in range(0, slot, chunk):
        writer.write_frames(index, r, buf[r:r + chunk])
    K = len(reader.spec.objects)
    names = writer.state_names
    rows = {n: np.zeros((slot, *_tail(writer, n)), ARRAY_SPECS[n].dtype) for n in names}
    nan_keys = ("qpos", "qvel", "object_vel", "object_visible")
    for n in nan_keys:
        rows[n][k:frames] = np.nan
    after = np.zeros((frames, actions.shape[1]), np.float32)
    after[:frames - 1] = actions
    after[:k - 1] = st.actions[1:k]
    rows["actions"][:frames] = after
    rows["time"][:frames] = np.arange(frames) / float(env.metadata["render_fps"])
    rows["camera"][:frames] = env.scene.spec.cameras.index(env.camera)
    rows["ctrl"][k:frames] = actions[k - 1:frames - 1] if actions.shape[1] == rows["ctrl"].shape[1] else 0.0
    read = reader.read(all_frames)
    goal = reader.goal(st.params)
    rew, _, _ = reader.reward(read.pos, goal)
    rows["rewards"][1:frames] = rew[1:]
    rows["object_pos"][k:frames] = np.where(read.found[k:, :, None], read.pos[k:], 0.0)
    rows["object_centroid"][k:frames] = np.nan_to_num(read.uv[k:])
    if real is not None:
        for n, v in real.items():
            rows[n][:k] = v
        rows["intrinsics"][k:frames] = real["intrinsics"][-1]
        rows["extrinsics"][k:frames] = real["extrinsics"][-1]
        rows["object_active"][:frames] = st.infos[-1]["object_active"]
    else:
        rows["object_active"][:frames] = True if not K else _active(reader, st.params)
        rows["intrinsics"][:frames] = reader.k
        rows["extrinsics"][:frames] = reader.world_to_cam
    writer.commit(index, rows, frames, env_seed, params_json(st.params or {}), "", "[]")


def _tail(writer: EpisodeWriter, name: str) -> tuple[int, ...]:
    return tuple(writer.arrays[name].shape[1:])


def _active(reader: SceneReader, params: dict | None) -> np.ndarray:
    from worldsim.sim.scene import active_objects

    return active_objects(reader.spec, params) if params else np.ones(len(reader.spec.objects), bool)


"""`worldsim rollout WEIGHTS --out DIR`: roll a world model out autoregressively from MuJoCo or a store episode and
write the video and raw frames (beside MuJoCo's own rollout under the same actions, when starting from MuJoCo).

    worldsim rollout run/model.safetensors --out out/ --frames 100 --steps 3 --batch 4
    worldsim rollout run/model.safetensors --store data.zarr --split val --episode 2 --out out/
    worldsim rollout run/model.safetensors --to-store imagined.zarr --episodes 100 --frames 50 --out out/

With `--to-store`, `--episodes` rollouts (from MuJoCo, or from `--store`'s split) are written into a zarr store in
the recording schema, marked as generated (worldsim/rollout/to_store.py), instead of a video.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from worldsim.errors import ConfigError


def add_rollout_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--steps", type=int, default=None,
                   help="denoising steps per frame (default: the weights' own, 3 unless their file says)")
    p.add_argument("--sampler", default="euler", help="euler, heun or euler_a (ancestral)")
    p.add_argument("--window", type=int, default=None, help="context frames kept in the KV cache")
    p.add_argument("--context-sigma", type=float, default=0.0, help="noise level of context frames (GameNGen)")
    p.add_argument("--resolution", type=int, nargs="+", default=None, help="H [W]: a trained resolution")
    p.add_argument("--camera", default=None, help="a trained camera (default: the first)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", default="mp4", choices=("mp4", "gif"))
    p.add_argument("--no-progress", action="store_true")


def resolution(args) -> int | tuple[int, int] | None:
    r = args.resolution
    if r is None:
        return None
    if len(r) not in (1, 2):
        raise ConfigError(f"expected H or H W, got {r}", field="--resolution")
    return r[0] if len(r) == 1 else (r[0], r[1])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("weights", help="exported weights (.safetensors)")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--frames", type=int, default=50, help="frames to generate")
    p.add_argument("--context", type=int, default=None, help="real context frames (default: training clip - 1)")
    p.add_argument("--batch", type=int, default=1, help="rollouts at once (MuJoCo seeds seed .. seed + batch - 1)")
    p.add_argument("--store", default=None, help="start from this store's episode instead of MuJoCo")
    p.add_argument("--split", default="test")
    p.add_argument("--episode", type=int, default=0)
    p.add_argument("--policy", default="smooth", help="actions: smooth, uniform or zero (worldsim/data/policies.py)")
    p.add_argument("--to-store", default=None, help="write --episodes generated episodes into this zarr store")
    p.add_argument("--episodes", type=int, default=10, help="with --to-store: episodes to generate")
    p.add_argument("--to-split", default="train", help="with --to-store: the split to write")
    add_rollout_options(p)


def main(args: argparse.Namespace) -> int:
    from worldsim.data.policies import make_policy
    from worldsim.rollout import starts
    from worldsim.rollout.autoregressive import RolloutConfig, rollout
    from worldsim.rollout.model import WorldModel
    from worldsim.rollout.outputs import write_outputs

    if args.frames < 1 or args.batch < 1:
        raise ConfigError("--frames and --batch must be positive", field="--frames")
    model = WorldModel.load(args.weights)
    hw = model.resolution(resolution(args))
    camera = args.camera or model.scene.cameras[0]
    model.check(camera=camera)
    k = args.context or max(1, model.scene.train_frames - 1)
    cfg = RolloutConfig(steps=args.steps, sampler=args.sampler, window=args.window, context_sigma=args.context_sigma)
    cfg.check()
    if args.to_store:
        from worldsim.rollout.to_store import generate_store

        out = generate_store(model, args.to_store, episodes=args.episodes, frames=k + args.frames, context=k,
                             source=args.store or "mujoco", source_split=args.split, policy=args.policy,
                             split=args.to_split, seed=args.seed, resolution=hw, camera=camera, config=cfg,
                             batch=args.batch, progress=not args.no_progress)
        print(f"wrote {args.episodes} generated episodes ({k} real + {args.frames} generated frames) to {out} "
              f"[{args.to_split}]")
        return 0
    A = model.scene.action_dim
    rng = np.random.default_rng(args.seed)
    from gymnasium.spaces import Box

    space = Box(model.scene.action_low, model.scene.action_high, dtype=np.float32)
    acts = np.zeros((args.batch, args.frames, A), np.float32)
    for b in range(args.batch):
        act = make_policy(args.policy).episode(rng, space, model.scene.name)
        if A:
            acts[b] = np.stack([act(t, {}) for t in range(args.frames)])
    truth = None
    if args.store:
        from worldsim.data.store import open_store

        a = open_store(args.store).attrs  # weights of another scene, frame skip or resolution are refused (issue 12)
        model.check(scene=a["scene"], frame_skip=int(a["frame_skip"]), resolution=tuple(a["resolution"]))
        sts = [starts.from_store(args.store, args.split, args.episode + b, 0, k) for b in range(args.batch)]
    else:
        from worldsim.sim.scene_env import SceneEnv

        env = SceneEnv(model.scene.name, resolution=hw, camera=camera, frame_skip=model.scene.frame_skip)
        sts, truth = [], []
        try:
            for b in range(args.batch):
                st = starts.from_mujoco(env, args.seed + b, k)
                sts.append(st)
                truth.append(np.stack([env.step(a)[0] for a in acts[b]]))  # MuJoCo under the same actions
        finally:
            env.close()
        truth = np.stack(truth)
    ctx = np.stack([s.frames for s in sts])
    params = [s.params for s in sts] if model.net.cfg.param_dim else None
    gen = rollout(model, ctx, acts, config=cfg, seed=args.seed, context_actions=np.stack([s.actions for s in sts]),
                  cameras=camera, params=params, progress=not args.no_progress)
    video = np.concatenate([ctx, gen], 1)
    extra = {"actions": acts, "context": ctx}
    if truth is not None:
        extra["mujoco"] = truth
        video = np.concatenate([video, np.concatenate([ctx, truth], 1)], 3)  # model left, MuJoCo right
    paths = write_outputs(args.out, "rollout", video, model.scene.fps, args.format, generated=gen, **extra)
    print(f"wrote {', '.join(str(p) for p in paths)} ({args.batch} x {args.frames} generated frames after {k} context"
          f"{'; MuJoCo on the right' if truth is not None else ''})")
    return 0

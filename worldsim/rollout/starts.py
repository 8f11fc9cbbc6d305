"""Where a rollout starts: context frames given by the caller, read from an episode of a recorded store, or rendered
by the real scene from a MuJoCo state. Every source yields the same `Start`, so the env, the planner, batch
generation and the CLI share one code path.

Actions follow the training data: `actions[t]` is the action *into* frame t (the one applied after frame t - 1),
zero for an episode's first frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import mujoco
import numpy as np

from worldsim.errors import ConfigError, StoreError


@dataclass
class Start:
    frames: np.ndarray  # (k, H, W, 3) uint8 context
    actions: np.ndarray  # (k, A) float32, the action into each context frame
    params: dict | None  # the episode's scene quantities, when known
    source: str  # "context", "store" or "mujoco"
    cameras: list[str] | None = None  # per context frame, when known
    state: np.ndarray | None = None  # mj_getState(mjSTATE_INTEGRATION) at the last context frame (MuJoCo starts)
    infos: list[dict] = field(default_factory=list)  # MuJoCo's info per context frame (MuJoCo starts)


def from_frames(frames, actions=None, params: dict | None = None, action_dim: int = 0) -> Start:
    f = np.asarray(frames)
    if f.ndim != 4:
        raise ConfigError(f"expected context frames (k, H, W, 3), got shape {f.shape}", field="context")
    a = np.zeros((len(f), action_dim), np.float32) if actions is None else np.asarray(actions, np.float32)
    return Start(f, a, params, "context")


def from_store(path, split: str = "test", index: int = 0, start: int = 0, frames: int = 1) -> Start:
    """Frames [start, start + frames) of episode `index` of a store's split, with the actions into them."""
    from worldsim.data.store import open_store

    store = open_store(path)
    ep = store.episode(split, int(index), ["frames", "actions", "camera", "params"])
    n = len(ep["frames"])
    if not (0 <= start and start + frames <= n):
        raise StoreError(f"frames [{start}, {start + frames}) are not all in episode {index} ({n} frames)",
                         source=store.path, field="start")
    acts = np.asarray(ep["actions"], np.float32)
    into = np.concatenate([np.zeros_like(acts[:1]), acts[:-1]])                          # (n, A) into frame t
    cams = [store.attrs["cameras"][int(c)] for c in ep["camera"][start:start + frames]]
    return Start(np.asarray(ep["frames"][start:start + frames]), into[start:start + frames], ep["params"], "store",
                 cams)


def sim_state(env) -> np.ndarray:
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    out = np.empty(mujoco.mj_stateSize(env.model, spec))
    mujoco.mj_getState(env.model, env.data, out, spec)
    return out


def from_mujoco(env, seed: int | None, frames: int = 1, *, params: dict | None = None,
                distribution: str | None = None, actions=None, state: dict | None = None) -> Start:
    """Reset a `SceneEnv` and render `frames` context frames, stepping it with `actions` (frames - 1, A) (zeros by
    default). `state` ({"qpos", "qvel"}, with the episode's `params`) starts from that exact MuJoCo state, rendered
    by the scene as `worldsim/data/rerender.py` does. The env is left at the last context frame, so MuJoCo can
    continue from the same state."""
    options = {}
    if params is not None:
        options["params"] = params
    if distribution is not None:
        options["distribution"] = distribution
    obs, info = env.reset(seed=seed, options=options or None)
    if state is not None:
        obs, info = _set_state(env, state, params, info)
    A = env.action_space.shape[0]
    acts = np.zeros((frames - 1, A), np.float32) if actions is None else np.asarray(actions, np.float32)
    out, infos = [obs], [info]
    for t in range(frames - 1):
        obs, _, _, _, info = env.step(acts[t])
        out.append(obs)
        infos.append(info)
    into = np.concatenate([np.zeros((1, A), np.float32), acts]).astype(np.float32)
    return Start(np.stack(out), into, info["params"], "mujoco", [i["camera"] for i in infos], sim_state(env), infos)


def _set_state(env, state: dict, params: dict | None, info: dict) -> tuple[np.ndarray, dict]:
    from worldsim.sim.render import FrameRenderer

    if params is None:
        raise ConfigError("a MuJoCo `state` needs the episode's `params` (sizes, colours, objects)", field="state")
    try:
        qpos, qvel = np.asarray(state["qpos"], np.float64), np.asarray(state["qvel"], np.float64)
    except (KeyError, TypeError):
        raise ConfigError("expected state = {'qpos': (nq,), 'qvel': (nv,)}", field="state") from None
    m, d = env.model, env.data
    if qpos.shape != (m.nq,) or qvel.shape != (m.nv,) or not (np.isfinite(qpos).all() and np.isfinite(qvel).all()):
        raise ConfigError(f"expected finite qpos ({m.nq},) and qvel ({m.nv},), got {qpos.shape}, {qvel.shape}",
                          field="state")
    d.qpos[:], d.qvel[:] = qpos, qvel
    mujoco.mj_forward(m, d)
    renderer = FrameRenderer(env.scene, m, env.height, env.width)
    try:
        obs = renderer.render(d, env.scene.camera_ids[env.camera], env.scene.active(params), visibility=False).rgb
    finally:
        renderer.close()
    return obs, {**info, "qpos": qpos.copy(), "qvel": qvel.copy()}

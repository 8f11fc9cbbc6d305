"""Paired rollouts: MuJoCo and a predictor from the same start and the same actions, side by side.

Test episodes are fresh MuJoCo episodes drawn by seed from a scene and a distribution (`id`, `ood`, `ood:NAME`)
(`fresh_episodes`), or the committed episodes of a recorded store's split (`store_episodes`, issue 4's zarr store:
frames, actions, object arrays and cameras as recorded; the full MuJoCo state is rebuilt from the recorded
qpos/qvel/ctrl/time and the episode's params). For each
episode MuJoCo renders k context frames and H more; the predictor sees the k context frames and all k + H - 1
actions and returns H frames. MuJoCo's frames and states (object positions and velocities, pixel centroids,
visible fractions, cameras, the full integration state) are kept beside the prediction, so every metric compares
like with like.

Seeds: episode i of (scene, distribution, seed) resets its env with a seed from
`np.random.SeedSequence([seed, crc32("eval/" + scene + "/" + distribution), i])`: a stream of its own, disjoint
from the recorder's train/val/test streams, reproducible on any machine and for any batch size.
Actions (actuated scenes), `policy`: `random` = uniform draws over the action box, each held for `ACTION_HOLD`
frames, from the same seed sequence; `scripted` = the scene's scripted controller (`push`:
`worldsim.sim.push_policy.scripted_push_policy`, the recorder's expert), a function of the state. Either way the
true actions are the ones MuJoCo was given, and the predictor receives them.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import mujoco
import numpy as np
from tqdm.auto import tqdm

from worldsim.errors import ConfigError, StoreError
from worldsim.eval.predictor import Conditioning, Predictor, SimState
from worldsim.sim.registry import get_scene

ACTION_HOLD = 5  # frames each random action is held in fresh actuated episodes
HOLDOUT_QUANTITY = "radius"  # `heldout` without a named quantity: worldsim.data.splits' rule on object radii
POLICIES = ("random", "scripted")


@dataclass
class Episodes:
    """MuJoCo episodes stacked batch first (T = k + H frames each; K objects; A action size)."""

    scene: str
    distribution: str
    camera: str
    fps: float
    frame_skip: int
    seeds: np.ndarray  # (B,) env reset seeds
    frames: np.ndarray  # (B, T, H, W, 3) uint8
    actions: np.ndarray  # (B, T - 1, A) float32; actions[:, t] moves frame t to t + 1
    object_pos: np.ndarray  # (B, T, K, 3) m
    object_vel: np.ndarray  # (B, T, K, 3) m/s
    centroid: np.ndarray  # (B, T, K, 2) px, from MuJoCo's segmentation (0 where not visible)
    visible: np.ndarray  # (B, T, K) visible fraction
    active: np.ndarray  # (B, K) bool
    intrinsics: np.ndarray  # (B, T, 3, 3)
    extrinsics: np.ndarray  # (B, T, 4, 4) world-to-camera
    state: np.ndarray  # (B, T, n) float64 mj_getState(mjSTATE_INTEGRATION) per frame
    params: list[dict] = field(default_factory=list)  # per episode, every scene quantity
    events: list[list[dict]] = field(default_factory=list)  # per episode, MuJoCo's events (sim/events.py), all frames
    masses: np.ndarray | None = None  # (B, K) kg, each object's body mass in the episode
    gravity: np.ndarray | None = None  # (B, 3) m/s^2
    frame_cameras: tuple[str, ...] | None = None  # multi-shot: every frame's camera, shared by the batch (else None)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def length(self) -> int:
        return self.frames.shape[1]

    def take(self, idx) -> Episodes:
        """The episodes at `idx` (a slice or index array)."""
        sel = np.arange(len(self))[idx]
        arrays = {f: getattr(self, f)[sel] for f in ("seeds", "frames", "actions", "object_pos", "object_vel",
                                                      "centroid", "visible", "active", "intrinsics", "extrinsics",
                                                      "state")}
        return Episodes(self.scene, self.distribution, self.camera, self.fps, self.frame_skip,
                        params=[self.params[i] for i in sel],
                        events=[self.events[i] for i in sel] if self.events else [],
                        masses=None if self.masses is None else self.masses[sel],
                        gravity=None if self.gravity is None else self.gravity[sel],
                        frame_cameras=self.frame_cameras, **arrays)


def episode_seed(scene: str, distribution: str, seed: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32(f"eval/{scene}/{distribution}".encode()), index])


def fresh_episodes(scene: str, n: int, length: int, *, distribution: str = "id", seed: int = 0,
                   resolution: int | tuple[int, int] = 32, camera: str | None = None, start: int = 0,
                   policy: str = "random", shots: list | None = None, holdout: str | None = None,
                   progress: bool = False) -> Episodes:
    """Roll out `n` fresh MuJoCo episodes and keep frames `start .. start + length - 1` of each (frame 0 of the
    result is episode frame `start`; event frames are shifted likewise). `start` > 0 places the rollout later in
    the episode, e.g. over the occlusion in `occlusion`.

    `shots`: a multi-shot schedule `[[frame, camera], ...]` in episode frames, the same for every episode (the
    env's reset option; `Episodes.frame_cameras` then names every kept frame's camera). `holdout`: a per-object
    quantity of `worldsim.data.splits`' held-out-combination rule; with it, `distribution="heldout"` draws every
    object from its held-out half and `id` from the kept halves (what a store recorded with `--holdout` trains on)."""
    from worldsim.sim.scene_env import SceneEnv

    if n <= 0:
        raise ConfigError(f"the test split is empty: need at least one episode, got {n}", field="episodes")
    if start < 0:
        raise ConfigError(f"must be >= 0, got {start}", field="start")
    from worldsim.data import splits

    rule = splits.check_holdout(get_scene(scene), holdout) if holdout or distribution == "heldout" else None
    if distribution == "heldout" and rule is None:
        rule = splits.check_holdout(get_scene(scene), HOLDOUT_QUANTITY)
    env = SceneEnv(scene, resolution=resolution, camera=camera,
                   distribution="id" if distribution == "heldout" else distribution)
    max_frames = env.scene.spec.max_frames
    if start + length > max_frames:
        raise ConfigError(f"start {start} + context + horizon = {start + length} frames is longer than {scene}'s "
                          f"episodes ({max_frames} frames)", field="horizon")
    if policy not in POLICIES:
        raise ConfigError(f"unknown policy {policy!r}; known: {', '.join(POLICIES)}", field="policy")
    scripted = None
    if policy == "scripted":
        if scene != "push":
            raise ConfigError(f"no scripted policy for {scene!r} (only push has one)", field="policy")
        from worldsim.sim.push_policy import scripted_push_policy as scripted
    keep, length = start, start + length
    rec: dict[str, list] = {k: [] for k in ("seeds", "frames", "actions", "object_pos", "object_vel", "centroid",
                                            "visible", "active", "intrinsics", "extrinsics", "state", "params",
                                            "events", "masses", "gravity")}
    space = env.action_space
    try:
        for i in tqdm(range(n), desc=f"MuJoCo {scene} ({distribution})", unit="episode", disable=not progress):
            ss = episode_seed(scene, distribution, seed, i)
            env_seed = int(ss.generate_state(1)[0])
            rng = np.random.default_rng(ss.spawn(1)[0])
            options = {} if shots is None else {"shots": shots}
            if rule is not None:
                prng = np.random.default_rng([seed, zlib.crc32(f"eval/{scene}/{distribution}/params".encode()), i])
                params = splits.draw_params(env.scene, prng, distribution, rule, {})
                if params is not None:
                    options["params"] = params
            obs, info = env.reset(seed=env_seed, options=options)
            n_hold = -(-(length - 1) // ACTION_HOLD)
            draws = rng.uniform(space.low, space.high, size=(n_hold, *space.shape)).astype(np.float32)
            actions = np.repeat(draws, ACTION_HOLD, axis=0)[: length - 1]
            frames, infos, states = [obs], [info], [sim_state(env)]
            for t in range(length - 1):
                if scripted is not None:
                    actions[t] = scripted(env)
                obs, _, _, _, info = env.step(actions[t])
                frames.append(obs)
                infos.append(info)
                states.append(sim_state(env))
            rec["seeds"].append(env_seed)
            rec["frames"].append(np.stack(frames))
            rec["actions"].append(actions.reshape(length - 1, -1))
            for key, src in (("object_pos", "object_pos"), ("object_vel", "object_vel"), ("centroid", "object_centroid"),
                             ("visible", "object_visible"), ("intrinsics", "intrinsics"), ("extrinsics", "extrinsics")):
                rec[key].append(np.stack([inf[src] for inf in infos]))
            rec["active"].append(info["object_active"])
            rec["state"].append(np.stack(states))
            rec["params"].append(info["params"])
            rec["events"].append([e for inf in infos for e in inf.get("events", [])])
            rec["masses"].append([float(env.model.body_mass[ids.body]) for ids in env.scene.objects])
            rec["gravity"].append(env.model.opt.gravity.copy())
        fps, frame_skip, cam = env.metadata["render_fps"], env.frame_skip, env.camera
    finally:
        env.close()
    params, events = rec.pop("params"), rec.pop("events")
    events = [[{**e, "frame": e["frame"] - keep} for e in evs if e["frame"] >= keep] for evs in events]
    arrays = {k: np.stack(v) for k, v in rec.items()}
    for k in ("frames", "object_pos", "object_vel", "centroid", "visible", "intrinsics", "extrinsics", "state"):
        arrays[k] = arrays[k][:, keep:]
    arrays["actions"] = arrays["actions"][:, keep:]
    frame_cameras = None
    if shots is not None:
        from worldsim.sim.shots import camera_at, schedule

        plan = schedule(shots, env.scene.spec.cameras, cam, max_frames, np.random.default_rng(0))
        frame_cameras = tuple(camera_at(plan, f) for f in range(keep, length))
    return Episodes(scene, distribution, cam, fps, frame_skip, params=params, events=events,
                    frame_cameras=frame_cameras, **arrays)


def windows(episodes: Episodes, starts, length: int) -> Episodes:
    """Per-episode windows: frames `starts[i] .. starts[i] + length - 1` of episode i (events shifted), e.g. to
    place each `push` episode's rollout around the end of its push. Single-camera episodes only."""
    starts = np.asarray(starts, int)
    if episodes.frame_cameras is not None:
        raise ConfigError("per-episode windows of multi-shot episodes are not supported", field="starts")
    if (starts < 0).any() or (starts + length > episodes.length).any():
        raise ConfigError(f"windows of {length} frames from {starts.tolist()} leave the episodes "
                          f"({episodes.length} frames)", field="starts")
    idx = starts[:, None] + np.arange(length)[None]
    rows = np.arange(len(episodes))[:, None]
    arrays = {f: getattr(episodes, f)[rows, idx] for f in ("frames", "object_pos", "object_vel", "centroid",
                                                         "visible", "intrinsics", "extrinsics", "state")}
    arrays["actions"] = episodes.actions[rows, idx[:, :-1]]
    events = [[{**e, "frame": e["frame"] - s} for e in evs if s <= e["frame"] < s + length]
              for evs, s in zip(episodes.events, starts)]
    return Episodes(episodes.scene, episodes.distribution, episodes.camera, episodes.fps, episodes.frame_skip,
                    seeds=episodes.seeds, active=episodes.active, params=episodes.params, events=events,
                    masses=episodes.masses, gravity=episodes.gravity, **arrays)


def store_episodes(path, length: int, *, split: str = "test", n: int | None = None, start: int = 0,
                   scene: str | None = None, resolution: int | None = None, progress: bool = False) -> Episodes:
    """The first `n` committed episodes of a store's split (all when None), frames `start .. start + length - 1`.

    Refuses a store of another scene or resolution (StoreError naming the field), an empty split and episodes
    shorter than `start + length` (ConfigError naming the field)."""
    from worldsim.data.store import open_store
    from worldsim.sim.scene_env import SceneEnv

    store = open_store(path)
    attrs = store.attrs
    if scene is not None and attrs["scene"] != scene:
        raise StoreError(f"the store holds {attrs['scene']!r} episodes, not {scene!r}", source=path, field="scene")
    if attrs.get("source") != "scene":
        raise StoreError("only stores of worldsim scenes can be evaluated (objects, colours, cameras)",
                         source=path, field="source")
    h, w = attrs["resolution"]
    if resolution is not None and (h, w) != (resolution, resolution):
        raise StoreError(f"the store's frames are {h}x{w}, not {resolution}x{resolution}", source=path,
                         field="resolution")
    idx = store.committed(split)
    if idx.size == 0:
        raise ConfigError(f"the test split is empty: split {split!r} has no complete episode", source=path,
                          field="split")
    idx = idx[:n] if n else idx
    cameras = attrs["cameras"]
    names = ("frames", "actions", "qpos", "qvel", "ctrl", "time", "object_pos", "object_vel", "object_centroid",
             "object_visible", "object_active", "camera", "intrinsics", "extrinsics", "env_seed", "params",
             "caption_events")
    rec: dict[str, list] = {k: [] for k in ("seeds", "frames", "actions", "object_pos", "object_vel", "centroid",
                                            "visible", "active", "intrinsics", "extrinsics", "state", "params",
                                            "events", "masses", "gravity")}
    env = None
    try:
        for i in tqdm(idx, desc=f"store {split}", unit="episode", disable=not progress):
            ep = store.episode(split, int(i), names)
            total = len(ep["frames"])
            if start + length > total:
                raise ConfigError(f"start {start} + context + horizon = {start + length} frames is longer than the "
                                  f"episodes of {path} ({total} frames)", field="horizon")
            win = slice(start, start + length)
            camera = cameras[int(ep["camera"][start])]
            if env is None:
                env = SceneEnv(attrs["scene"], resolution=(h, w), frame_skip=int(attrs["frame_skip"]), camera=camera,
                               visibility=False)
            env.reset(seed=0, options={"params": ep["params"]})
            states = []
            for t in range(start, start + length):
                env.data.qpos[:], env.data.qvel[:] = ep["qpos"][t], ep["qvel"][t]
                env.data.ctrl[:], env.data.time = ep["ctrl"][t], float(ep["time"][t])
                mujoco.mj_forward(env.model, env.data)
                states.append(sim_state(env))
            rec["seeds"].append(int(ep["env_seed"]))
            rec["frames"].append(ep["frames"][win])
            rec["actions"].append(ep["actions"][start:start + length - 1].astype(np.float32))
            for key, src in (("object_pos", "object_pos"), ("object_vel", "object_vel"), ("centroid", "object_centroid"),
                             ("visible", "object_visible"), ("intrinsics", "intrinsics"), ("extrinsics", "extrinsics")):
                rec[key].append(np.asarray(ep[src][win], dtype=np.float64))
            rec["active"].append(ep["object_active"][start].astype(bool))
            rec["state"].append(np.stack(states))
            rec["params"].append(ep["params"])
            rec["events"].append([{**e, "frame": e["frame"] - start} for e in ep["caption_events"]
                                  if start <= e["frame"] < start + length])
            rec["masses"].append([float(env.model.body_mass[o.body]) for o in env.scene.objects])
            rec["gravity"].append(env.model.opt.gravity.copy())
    finally:
        if env is not None:
            env.close()
    params, events = rec.pop("params"), rec.pop("events")
    return Episodes(attrs["scene"], f"store:{split}", camera, float(attrs["fps"]), int(attrs["frame_skip"]),
                    params=params, events=events, **{k: np.stack(v) for k, v in rec.items()})


def sim_state(env) -> np.ndarray:
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    out = np.empty(mujoco.mj_stateSize(env.model, spec))
    mujoco.mj_getState(env.model, env.data, out, spec)
    return out


@dataclass
class Paired:
    """One predictor's rollout beside MuJoCo's, for the same episodes."""

    episodes: Episodes
    context: int  # k
    prediction: np.ndarray  # (B, H, H_px, W_px, 3) uint8

    @property
    def horizon(self) -> int:
        return self.prediction.shape[1]

    @property
    def truth(self) -> np.ndarray:
        """MuJoCo's frames k .. k + H - 1, (B, H, H_px, W_px, 3)."""
        return self.episodes.frames[:, self.context:self.context + self.horizon]


def conditioning(episodes: Episodes) -> Conditioning:
    from worldsim.sim.registry import get_scene

    names = get_scene(episodes.scene).spec.conditioned
    return Conditioning(episodes.scene, episodes.fps, episodes.camera,
                        tuple({n: p[n] for n in names} for p in episodes.params), cameras=episodes.frame_cameras)


def rollout(predictor: Predictor, episodes: Episodes, context: int, horizon: int, *, seed: int = 0,
            batch_size: int = 16, progress: bool = False) -> Paired:
    """Give `predictor` the first `context` frames and the true actions; collect `horizon` frames per episode."""
    if context < 1:
        raise ConfigError(f"need at least one context frame, got {context}", field="context")
    if horizon < 1:
        raise ConfigError(f"need a horizon of at least one frame, got {horizon}", field="horizon")
    if context + horizon > episodes.length:
        raise ConfigError(f"context {context} + horizon {horizon} is longer than the episodes "
                          f"({episodes.length} frames)", field="horizon")
    h, w = episodes.frames.shape[2:4]
    out = np.empty((len(episodes), horizon, h, w, 3), np.uint8)
    batches = range(0, len(episodes), batch_size)
    for start in tqdm(batches, desc=f"rollout {predictor.name}", unit="batch", disable=not progress):
        part = episodes.take(slice(start, start + batch_size))
        state = None
        if predictor.privileged:
            state = SimState(part.scene, (h, w), part.camera, part.frame_skip, tuple(part.params),
                             part.state[:, context - 1])
        pred = predictor.predict(part.frames[:, :context].copy(), part.actions[:, : context + horizon - 1].copy(),
                                 horizon, conditioning=conditioning(part), seed=seed + start, state=state)
        pred = np.asarray(pred)
        if pred.shape != (len(part), horizon, h, w, 3) or pred.dtype != np.uint8:
            raise ConfigError(f"predictor {predictor.name!r} returned {pred.dtype} {pred.shape}, expected uint8 "
                              f"{(len(part), horizon, h, w, 3)}", field="prediction")
        out[start:start + len(part)] = pred
    return Paired(episodes, context, out)

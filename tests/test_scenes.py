"""Contract tests over every registered scene: gymnasium API, determinism, real pixels, camera geometry."""

from __future__ import annotations

import dataclasses

import einops
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import worldsim
from worldsim.sim.camera import project
from worldsim.sim.registry import builtin_dir, get_scene
from worldsim.sim.scene import Scene, load_scene
from worldsim.sim.scene_env import SceneEnv
from worldsim.sim.spec import load_spec

SCENES = worldsim.scene_names()
COLOUR_TOLERANCE = 40.0  # 0-255 RGB distance from the spec colour that a rendered object pixel must be within


@pytest.fixture(scope="module", params=SCENES)
def scene_name(request):
    return request.param


def _rollout(env, seed: int, steps: int):
    frame, info = env.reset(seed=seed)
    env.action_space.seed(seed)
    frames, infos = [frame], [info]
    for _ in range(steps):
        frame, _, _, truncated, info = env.step(env.action_space.sample())
        frames.append(frame)
        infos.append(info)
        if truncated:
            break
    return np.stack(frames), infos


def test_builtin_folders_match_spec_names():
    for spec_file in builtin_dir().glob("*/spec.yaml"):
        assert load_spec(spec_file).name == spec_file.parent.name


def test_check_env(scene_name):
    """gymnasium's checker on the registered id (so the registration and its wrappers are checked too)."""
    import gymnasium

    env = gymnasium.make(worldsim.sim.registry.env_id(scene_name), resolution=32)
    check_env(env.unwrapped)
    check_env(env)
    env.close()


def test_gymnasium_id(scene_name):
    import gymnasium

    env = gymnasium.make(worldsim.sim.registry.env_id(scene_name), resolution=24)
    frame, _ = env.reset(seed=0)
    assert frame.shape == (24, 24, 3) and frame.dtype == np.uint8
    env.close()


def _assert_info_equal(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], np.ndarray):
            assert np.array_equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_determinism(scene_name):
    envs = [worldsim.make(scene_name, resolution=32) for _ in range(2)]
    (f1, i1), (f2, i2) = (_rollout(e, seed=7, steps=50) for e in envs)
    assert np.array_equal(f1, f2)
    for a, b in zip(i1, i2):
        _assert_info_equal(a, b)
    f3, _ = _rollout(envs[0], seed=8, steps=50)
    assert not np.array_equal(f1[: len(f3)], f3[: len(f1)])
    for e in envs:
        e.close()


def test_real_pixels(scene_name):
    """Each object that is mostly visible covers a few pixels close to its spec colour: a black or wrong frame fails."""
    env = worldsim.make(scene_name, resolution=64)
    spec = env.scene.spec
    checked = 0
    for seed in range(3):
        frames, infos = _rollout(env, seed, steps=10)
        for frame, info in zip(frames, infos):
            for k, obj in enumerate(spec.objects):
                if info["object_active"][k] and info["object_visible"][k] > 0.5:
                    dist = np.linalg.norm(frame.astype(float) - np.array(obj.colour, float), axis=-1)
                    assert (dist < COLOUR_TOLERANCE).sum() >= 3, (obj.name, info["frame"])
                    checked += 1
    assert checked > 0
    env.close()


@pytest.mark.parametrize("resolution", [(64, 64), (48, 80)])
def test_centroids_match_projection(scene_name, resolution):
    """Pixel centroids of fully visible objects agree with the camera projection of their positions within 1 px."""
    spec = get_scene(scene_name).spec
    checked = 0
    for camera in spec.cameras:
        env = worldsim.make(scene_name, resolution=resolution, camera=camera)
        _, infos = _rollout(env, seed=3, steps=20)
        for info in infos:
            uv = project(info["object_pos"], info["intrinsics"], info["extrinsics"])
            full = info["object_active"] & (info["object_visible"] >= 0.99)
            err = np.linalg.norm(uv[full] - info["object_centroid"][full], axis=-1)
            assert np.all(err <= 1.0), (camera, info["frame"], err)
            checked += int(full.sum())
        env.close()
    assert checked > 0


def test_supersampled_frame_is_the_box_mean_of_a_larger_render(scene_copy):
    """A scene with `supersample: 4` renders colour 4 x 4 times larger and averages each block; segmentation, and
    so centroids and visible fractions, stay those of the frame's own resolution."""
    folder = scene_copy("bounce")
    spec_file = folder / "spec.yaml"
    spec_file.write_text(spec_file.read_text() + "supersample: 4\n")
    scene = load_scene(folder)
    n = scene.spec.supersample
    assert n == 4
    plain = Scene(dataclasses.replace(scene.spec, supersample=1))
    envs = [SceneEnv(scene, resolution=(16, 24)), SceneEnv(plain, resolution=(16 * n, 24 * n)),
            SceneEnv(plain, resolution=(16, 24))]
    steps = [[e.reset(seed=5)] + [e.step(e.action_space.sample())[::4] for _ in range(5)] for e in envs]
    blended = 0
    for (aa, info), (big, _), (aliased, info_aliased) in zip(*steps):
        mean = einops.reduce(big.astype(np.float32), "(h a) (w b) c -> h w c", "mean", a=n, b=n)
        np.testing.assert_array_equal(aa, np.rint(mean).astype(np.uint8))
        np.testing.assert_array_equal(info["object_centroid"], info_aliased["object_centroid"])
        np.testing.assert_array_equal(info["object_visible"], info_aliased["object_visible"])
        blended += int((aa != aliased).any(-1).sum())
    assert blended > 0  # edge pixels mix ball and backdrop
    for e in envs:
        e.close()


def test_visible_fraction_measures_occlusion():
    """Seen from the tilted camera, a nearer ball partly hides its neighbour: that one's visible fraction drops
    below 1 while the nearer one stays fully visible; an inactive ball reports 0."""
    env = worldsim.make("bounce", resolution=64, camera="tilted")
    base = get_scene("bounce").sample(np.random.default_rng(0))
    params = {**base, "count": 2.0, "radius": [0.12, 0.12, 0.1], "x": [0.0, 0.27, 0.5], "z": [1.0, 1.0, 1.0],
              "speed": [0.0, 0.0, 0.0], "angle": [0.0, 0.0, 0.0]}
    _, info = env.reset(seed=0, options={"params": params})
    assert 0.05 < info["object_visible"][0] < 0.99
    assert info["object_visible"][1] == pytest.approx(1.0)
    assert info["object_visible"][2] == 0.0 and not info["object_active"][2]
    env.close()


def test_energy_conserved_one_ball():
    """A one-ball bounce episode keeps kinetic + potential energy within the spec's tolerance over 10 s."""
    env = worldsim.make("bounce", resolution=16, visibility=False)
    spec = env.scene.spec
    for seed in range(3):
        params = get_scene("bounce").sample(np.random.default_rng(seed))
        params["count"] = 1.0
        env.reset(seed=seed, options={"params": params})
        energies = []
        for _ in range(int(10 * env.metadata["render_fps"])):
            env.step(np.zeros(0, np.float32))
            if env.data.ncon == 0:  # contact springs store energy that mj_energy does not count
                energies.append(env.energy())
        e = np.array(energies)
        assert len(e) > 200
        assert (e.max() - e.min()) / e[0] <= spec.energy_tolerance
    env.close()


def test_bounce_balls_bounce():
    """Balls really move and stay inside the box over a whole episode."""
    env = worldsim.make("bounce", resolution=16, visibility=False)
    _, infos = _rollout(env, seed=1, steps=249)
    pos = np.stack([i["object_pos"] for i in infos])
    active = infos[0]["object_active"]
    assert np.all(np.abs(pos[:, active, 0]) < 1.0) and np.all(pos[:, active, 2] > 0) and np.all(pos[:, active, 2] < 2)
    assert np.ptp(pos[:, active, 0], axis=0).min() > 0.2
    env.close()


def test_recorded_state_rerenders_the_frame(scene_name):
    """Frame and state describe one instant: rendering a frame's recorded qpos/qvel (on a model rebuilt from the
    episode's params, with that frame's camera) gives the frame bit for bit."""
    from worldsim.sim.render import FrameRenderer
    import mujoco

    env = worldsim.make(scene_name, resolution=32)
    frames, infos = _rollout(env, seed=5, steps=12)
    other = worldsim.make(scene_name, resolution=32)
    other.reset(seed=0, options={"params": infos[0]["params"]})
    renderer = FrameRenderer(other.scene, other.model, 32, 32)
    for frame, info in zip(frames[::4], infos[::4]):
        other.data.qpos[:], other.data.qvel[:] = info["qpos"], info["qvel"]
        mujoco.mj_forward(other.model, other.data)
        cid = other.scene.camera_ids[info["camera"]]
        assert np.array_equal(renderer.render(other.data, cid, info["object_active"], visibility=False).rgb, frame)
    renderer.close()
    env.close()
    other.close()


def test_events_and_caption_in_info(scene_name):
    """Every frame's info has its events and the caption so far; frame 0 opens with its camera's shot."""
    env = worldsim.make(scene_name, resolution=16)
    _, infos = _rollout(env, seed=1, steps=5)
    assert infos[0]["events"][0] == {"frame": 0, "type": "shot", "camera": infos[0]["camera"]}
    assert all(e["frame"] == i["frame"] for i in infos for e in i["events"])
    assert all(i["caption"].startswith(f"Scene {scene_name}, frames 0 to {i['frame']}") for i in infos)
    env.close()

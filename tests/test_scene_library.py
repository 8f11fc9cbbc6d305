"""The scene library of issue 3: each scene's physics claim, the impossible occlusion twins, the scripted pusher,
the orbiting camera, multi-shot episodes, and the spec's new fields failing loudly."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import worldsim
from worldsim.errors import SceneError
from worldsim.sim.camera import project
from worldsim.sim.captions import caption
from worldsim.sim.push_policy import ScriptedPusher, scripted_push_policy
from worldsim.sim.registry import builtin_dir, get_scene
from worldsim.sim.scene import load_scene
from conftest import edit_text

MOMENTUM_TOLERANCE = 1e-9  # relative: contact forces are equal and opposite, so momentum is exact to rounding


def _run(env, seed, frames, options=None, policy=None):
    """Frames and infos of an episode (zero actions unless a policy is given)."""
    frame, info = env.reset(seed=seed, options=options)
    frames_, infos = [frame], [info]
    for _ in range(frames):
        a = policy(env) if policy else np.zeros(env.action_space.shape, np.float32)
        frame, _, _, truncated, info = env.step(a)
        frames_.append(frame)
        infos.append(info)
        if truncated:
            break
    return np.stack(frames_), infos


def _events(infos, kind=None):
    return [e for i in infos for e in i["events"] if kind is None or e["type"] == kind]


# --- collide -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("distribution", ["id", "ood:mass"])
def test_collide_conserves_momentum_and_energy(distribution):
    """Across the first ball-ball collision (contact-free frames on either side, nothing else touching between),
    total momentum is exact and kinetic energy agrees within the spec's energy_tolerance (1%). Momentum uses the
    *conditioned* masses from params, so a mass that is drawn but not simulated fails."""
    env = worldsim.make("collide", resolution=16, visibility=False)
    tol = env.scene.spec.energy_tolerance
    for seed in range(4):
        _, infos = _run(env, seed, 40, options={"distribution": distribution})
        m = np.array(infos[0]["params"]["mass"])
        first = [e for e in _events(infos) if e["type"] in ("collision", "bounce")][0]
        assert first["type"] == "collision", (seed, first)
        c = first["frame"]
        before, after = infos[c - 1]["object_vel"], infos[c + 1]["object_vel"]
        assert not _events(infos[c + 1: c + 2])  # nothing else began in between
        p0, p1 = (m[:, None] * before).sum(0), (m[:, None] * after).sum(0)
        k0, k1 = (0.5 * m * (before**2).sum(1)).sum(), (0.5 * m * (after**2).sum(1)).sum()
        assert np.linalg.norm(p1 - p0) <= MOMENTUM_TOLERANCE * np.linalg.norm(p0), seed
        assert abs(k1 - k0) <= tol * k0, (seed, abs(k1 - k0) / k0)
        assert np.linalg.norm(after - before) > 0.1  # the balls really exchanged momentum
    env.close()


def test_collide_balls_meet_first():
    """In distribution, the balls' first contact is with each other, within the first second."""
    env = worldsim.make("collide", resolution=16, visibility=False)
    for seed in range(10, 16):
        _, infos = _run(env, seed, 30)
        contacts = [e for e in _events(infos) if e["type"] in ("collision", "bounce")]
        assert contacts and contacts[0]["type"] == "collision" and contacts[0]["frame"] <= 25, (seed, contacts[:2])
    env.close()


# --- parabola ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,distribution", [("parabola", "id"), ("parabola", "ood"), ("parabola_g", "id"),
                                               ("parabola_g", "ood")])
def test_parabola_fits_scene_gravity(name, distribution):
    """Before its first contact the projectile's height fits a parabola whose g is the scene's g within 1%,
    and its horizontal motion is uniform."""
    env = worldsim.make(name, resolution=16, visibility=False)
    for seed in range(3):
        _, infos = _run(env, seed, 75, options={"distribution": distribution})
        g = infos[0]["params"]["gravity"]
        first = min([e["frame"] for e in _events(infos, "bounce")], default=len(infos))
        flight = infos[:first]
        assert len(flight) >= 6, (seed, len(flight))
        t = np.array([i["time"] for i in flight])
        pos = np.stack([i["object_pos"][0] for i in flight])
        g_fit = -2 * np.polyfit(t, pos[:, 2], 2)[0]
        assert abs(g_fit - g) <= 0.01 * g, (seed, g, g_fit)
        vx = np.diff(pos[:, 0]) / np.diff(t)
        assert np.ptp(vx) < 1e-6
    env.close()


@pytest.mark.parametrize("name", ["parabola", "parabola_g"])
def test_parabola_bounces_keep_energy(name):
    """After landing the ball bounces elastically: energy at contact-free frames stays within energy_tolerance."""
    env = worldsim.make(name, resolution=16, visibility=False)
    for seed in range(2):
        env.reset(seed=seed)
        energies, bounces = [], 0
        for _ in range(75):
            info = env.step(np.zeros(0, np.float32))[-1]
            bounces += sum(e["type"] == "bounce" for e in info["events"])
            if env.data.ncon == 0:  # contact springs hold energy that mj_energy does not count
                energies.append(env.energy())
        e = np.array(energies)
        assert bounces >= 2 and (e.max() - e.min()) / e[0] <= env.scene.spec.energy_tolerance, (seed, bounces)
    env.close()


def test_parabola_gravity_is_conditioned_and_varies():
    spec = get_scene("parabola_g").spec
    assert spec.conditioned == ("gravity",)
    env = worldsim.make("parabola_g", resolution=16, visibility=False)
    gs = {env.reset(seed=s)[1]["params"]["gravity"] for s in range(3)}
    assert len(gs) == 3 and all(6.0 <= g <= 14.0 for g in gs)
    assert get_scene("parabola").spec.conditioned == ()
    env.close()


def test_parabola_pixels_show_the_parabola():
    """The frames, not only the state, show the parabola: pixel centroids from the front camera (which looks
    straight along +y, so image rows are linear in height) fit the scene's g within 3% at 128 px."""
    env = worldsim.make("parabola", resolution=128)
    checked = 0
    for seed in range(3):
        _, infos = _run(env, seed, 75, options={"distribution": "ood:speed"})
        first = min([e["frame"] for e in _events(infos, "bounce")], default=len(infos))
        flight = [i for i in infos[:first] if i["object_visible"][0] >= 0.99]
        if len(flight) < 12:
            continue
        t = np.array([i["time"] for i in flight])
        v = np.array([i["object_centroid"][0, 1] for i in flight])
        k, ext = flight[0]["intrinsics"], flight[0]["extrinsics"]
        g_px = 2 * np.polyfit(t, v, 2)[0] * ext[2, 3] / k[1, 1]  # px/s^2 -> m/s^2 at the ball plane's depth
        assert abs(g_px - 9.81) <= 0.03 * 9.81, (seed, g_px)
        checked += 1
    assert checked >= 2
    env.close()


# --- occlusion -----------------------------------------------------------------------------------------------

def _hidden_runs(vis: np.ndarray) -> list[int]:
    """Lengths of the runs of frames with visible fraction < 0.02 that have a fully visible frame on both sides."""
    runs, start = [], None
    for f, v in enumerate(vis):
        if v < 0.02 and start is None:
            start = f
        elif v >= 0.02 and start is not None:
            if start > 0 and vis[:start].max() >= 0.99 and vis[f:].max() >= 0.99:
                runs.append(f - start)
            start = None
    return runs


def test_occlusion_ball_hides_and_returns():
    """In a real episode the visible fraction drops to ~0 behind the wall for a few frames and returns to 1;
    the out-of-distribution wall hides it several times longer."""
    env = worldsim.make("occlusion", resolution=64)
    short, long = [], []
    for seed in range(3):
        _, infos = _run(env, seed, 60)
        vis = np.array([i["object_visible"][0] for i in infos])
        assert vis[0] >= 0.99
        runs = _hidden_runs(vis)
        assert len(runs) == 1 and 2 <= runs[0] <= 6, (seed, runs)
        short += runs
        assert [e["type"] for e in _events(infos) if e.get("object") == "ball0"] == ["occluded", "emerged"]
        _, infos = _run(env, seed, 74, options={"distribution": "ood:occluder_width"})
        long += _hidden_runs(np.array([i["object_visible"][0] for i in infos]))
    assert min(long) >= 2.5 * max(short), (short, long)
    env.close()


@pytest.mark.parametrize("kind", ["vanish", "teleport", "recolour"])
def test_violation_twins(kind):
    """Each impossible variant is bit-equal to its possible twin before the violation frame, differs after it,
    and has the same info (state, visibility) and the same caption."""
    spec = get_scene("occlusion").spec
    env = worldsim.make("occlusion", resolution=32)
    for seed in (0, 5):
        twin_frames, twin = _run(env, seed, 55, options={"violation": "none"})
        frames, infos = _run(env, seed, 55, options={"violation": kind})
        v = infos[-1]["violation_frame"]
        assert v == twin[-1]["violation_frame"] > 0
        assert [i["violation_frame"] for i in infos[:v]] == [-1] * v and infos[v]["violation_frame"] == v
        assert infos[-1]["violation"] == kind and twin[-1]["violation"] == "none"
        assert infos[v]["object_visible"][0] < 0.02  # the violation happens while the ball is hidden
        assert np.array_equal(frames[:v], twin_frames[:v])
        assert not np.array_equal(frames[v:], twin_frames[v:])
        for a, b in zip(infos, twin):
            for key in ("qpos", "qvel", "object_pos", "object_centroid", "object_visible"):
                assert np.array_equal(a[key], b[key]), key
            assert a["events"] == b["events"]
        assert caption(spec, infos[0]["params"], _events(infos)) == caption(spec, twin[0]["params"], _events(twin))
        red = np.array(spec.objects[0].colour, float)
        n_red = [int((np.linalg.norm(f.astype(float) - red, axis=-1) < 40).sum()) for f in frames]
        n_red_twin = [int((np.linalg.norm(f.astype(float) - red, axis=-1) < 40).sum()) for f in twin_frames]
        back = next(f for f in range(v, len(twin)) if twin[f]["object_visible"][0] >= 0.99)
        if kind in ("vanish", "recolour"):  # never seen red again after the wall, while the twin is
            assert n_red_twin[back] > 0 and max(n_red[v:]) == 0
        if kind == "recolour":
            yellow = np.array(spec.occluder.recolour, float)
            assert (np.linalg.norm(frames[back].astype(float) - yellow, axis=-1) < 40).sum() > 0
        if kind == "teleport":  # red again, but ahead of where the twin's ball is
            assert max(n_red[v:]) > 0
            seen = [f for f in range(v, len(frames)) if n_red[f] > 0 and n_red_twin[f] > 0]
            cols = lambda fr: np.flatnonzero((np.linalg.norm(fr.astype(float) - red, axis=-1) < 40).any(0)).mean()  # noqa: E731
            assert all(cols(frames[f]) > cols(twin_frames[f]) for f in seen)
    env.close()


def test_violation_requests_are_checked():
    env = worldsim.make("occlusion", resolution=16)
    with pytest.raises(SceneError, match="options.violation"):
        env.reset(seed=0, options={"violation": "explode"})
    env.close()
    env = worldsim.make("bounce", resolution=16)
    with pytest.raises(SceneError, match="no occluder"):
        env.reset(seed=0, options={"violation": "vanish"})
    _, info = env.reset(seed=0)
    assert "violation" not in info  # scenes without an occluder keep their info keys
    env.close()


# --- push ----------------------------------------------------------------------------------------------------

def test_scripted_pusher_delivers_the_block():
    """A real episode: the scripted pusher pushes block0 into the goal; the reward (minus the distance) rises to
    above -success_radius, success turns True and a `goal` event and `push` events are recorded."""
    spec = get_scene("push").spec
    env = worldsim.make("push", resolution=32)
    for seed in range(3):
        frame, info = env.reset(seed=seed)
        rewards, start = [], info["goal_distance"]
        events = list(info["events"])
        for _ in range(spec.max_frames):
            frame, reward, terminated, truncated, info = env.step(scripted_push_policy(env))
            rewards.append(reward)
            events += info["events"]
            assert reward == -info["goal_distance"] and not terminated
        assert start > spec.reward.success_radius  # it really had to be pushed
        assert info["success"] and rewards[-1] >= -spec.reward.success_radius, (seed, rewards[-1])
        assert info["goal_distance"] < start / 3
        assert any(e["type"] == "push" and e["object"] == "block0" for e in events)
        assert [e["frame"] for e in events if e["type"] == "goal"]
    env.close()


def test_blocks_stay_where_pushed():
    """Dry friction: once the pusher stops, the pushed block stops within a few frames and stays put."""
    env = worldsim.make("push", resolution=16, visibility=False)
    policy = ScriptedPusher(env)
    start = env.reset(seed=1)[1]["object_pos"][1].copy()
    for _ in range(45):
        env.step(policy())
    a = np.zeros(2, np.float32)
    for _ in range(5):
        _, _, _, _, info = env.step(a)
    rest = info["object_pos"][1].copy()
    assert np.linalg.norm(rest - start) > 0.05  # it was pushed
    for _ in range(25):
        _, _, _, _, info = env.step(a)
    assert np.linalg.norm(info["object_pos"][1] - rest) < 1e-3
    assert np.linalg.norm(info["object_vel"][1]) < 1e-3
    env.close()


# --- orbit ---------------------------------------------------------------------------------------------------

def test_orbit_action_moves_the_camera():
    """The action turns the camera about the table: its position stays 3.2 m from the rig centre, its azimuth
    follows the commanded rate, extrinsics follow it, and the still objects do not move."""
    env = worldsim.make("orbit", resolution=32)
    _, info = env.reset(seed=0)
    ext0, pos0 = info["extrinsics"], info["object_pos"].copy()
    centre = np.array([0.0, 0.0, 0.15])
    az = []
    for _ in range(25):  # 1 s at 1 rad/s
        _, _, _, _, info = env.step(np.array([1.0, 0.0], np.float32))
        cam = -info["extrinsics"][:3, :3].T @ info["extrinsics"][:3, 3]  # camera centre in world coordinates
        assert np.linalg.norm(cam - centre) == pytest.approx(3.2, abs=1e-6)
        az.append(np.arctan2(cam[0], -cam[1]))
    assert np.unwrap(az)[-1] == pytest.approx(1.0, abs=0.05)
    assert not np.allclose(info["extrinsics"], ext0)
    for _ in range(3):  # the rig's velocity actuators settle within ~10 ms
        _, _, _, _, info = env.step(np.zeros(2, np.float32))
    ext = info["extrinsics"]
    for _ in range(5):
        _, _, _, _, info = env.step(np.zeros(2, np.float32))
    assert np.allclose(info["extrinsics"], ext, atol=1e-6)  # zero rate: the camera stays
    assert np.array_equal(info["object_pos"], pos0)
    # The objects project where they are seen, from every pose on the orbit (also checked over random actions
    # by the registry-wide contract tests).
    full = info["object_visible"] >= 0.99
    uv = project(info["object_pos"], info["intrinsics"], info["extrinsics"])
    assert full.any() and np.all(np.linalg.norm(uv[full] - info["object_centroid"][full], axis=-1) <= 1.0)
    env.close()


# --- multi-shot ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["bounce", "collide", "orbit"])
def test_multishot_cameras_match_frames(name):
    """Cuts between cameras: each frame's info names its camera, and every fully visible object's centroid
    matches its projection through that frame's intrinsics and extrinsics, across the cuts."""
    cams = get_scene(name).spec.cameras
    plan = [[0, cams[1]], [4, cams[0]], [9, cams[1]], [15, cams[0]]]
    env = worldsim.make(name, resolution=(48, 80))
    _, infos = _run(env, 2, 20, options={"shots": plan})
    expected = [cams[1]] * 4 + [cams[0]] * 5 + [cams[1]] * 6 + [cams[0]] * 6
    assert [i["camera"] for i in infos] == expected
    assert [(e["frame"], e["camera"]) for e in _events(infos, "shot")] == [tuple(p) for p in plan]
    checked = 0
    for info in infos:
        full = info["object_active"] & (info["object_visible"] >= 0.99)
        uv = project(info["object_pos"], info["intrinsics"], info["extrinsics"])
        assert np.all(np.linalg.norm(uv[full] - info["object_centroid"][full], axis=-1) <= 1.0), info["frame"]
        checked += int(full.sum())
    assert checked > 10
    assert not np.allclose(infos[3]["extrinsics"], infos[4]["extrinsics"])
    env.close()


def test_random_shots_are_seeded_and_leave_physics_alone():
    env = worldsim.make("bounce", resolution=16)
    _, a = _run(env, 4, 60, options={"shots": "random"})
    _, b = _run(env, 4, 60, options={"shots": "random"})
    _, c = _run(env, 5, 60, options={"shots": "random"})
    _, plain = _run(env, 4, 60)
    cams = lambda infos: [i["camera"] for i in infos]  # noqa: E731
    assert cams(a) == cams(b) and cams(a) != cams(c) and len(set(cams(a))) == 2
    assert all(np.array_equal(x["qpos"], y["qpos"]) for x, y in zip(a, plain))
    env.close()


@pytest.mark.parametrize("shots,match", [([[0, "front"], [0, "tilted"]], "increase"), ([[3, "side"]], "unknown camera"),
                                         ("sometimes", "random"), ([[-1, "front"]], "frame >= 0")])
def test_bad_shots_are_errors(shots, match):
    env = worldsim.make("bounce", resolution=16)
    with pytest.raises(SceneError, match=match):
        env.reset(seed=0, options={"shots": shots})
    env.close()


# --- the spec's new fields -----------------------------------------------------------------------------------

@pytest.fixture
def occlusion_copy(scene_copy):
    return scene_copy("occlusion")


_edit = edit_text


@pytest.mark.parametrize("old,new,field", [
    ("object: ball0, recolour", "object: ball7, recolour", "occluder.object"),
    ("geom: wall,", "geom: fence,", "occluder.geom"),
    ("recolour: [230, 200, 40]", "recolour: [225, 45, 45]", "occluder.recolour"),
    ("recolour: [230, 200, 40]", "recolour: [150, 105, 70]", "occluder.recolour"),  # the wall's brown
    ("teleport: 0.4}", "teleport: -1}", "occluder.teleport"),
    ("  angle1:         {kind: angle, objects: [ball1], value: 180}",
     "  angle1:         {kind: angle, objects: [ball0], value: 180}", "quantities.angle1"),
    ("colour_name: blue", "colour_name: red", "objects[1].colour_name"),
])
def test_new_spec_fields_fail_loudly(occlusion_copy, old, new, field):
    _edit(occlusion_copy / "spec.yaml", old, new)
    with pytest.raises(SceneError) as e:
        load_scene(occlusion_copy)
    assert "spec.yaml" in str(e.value) and field in str(e.value)


def test_goal_quantities_need_a_reward(tmp_path):
    dst = tmp_path / "push"
    shutil.copytree(builtin_dir() / "push", dst)
    _edit(dst / "spec.yaml", "reward: {kind: goal_distance, object: block0, goal: goal, success_radius: 0.08}\n", "")
    with pytest.raises(SceneError, match="goal_x/goal_y"):
        load_scene(dst)

"""`worldsim scenes`: list registered scenes, or describe one (objects, quantities, cameras, actions)."""

from __future__ import annotations

import argparse

from worldsim.sim.registry import env_id, get_scene, register_scene, scene_names


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="a scene to describe")
    p.add_argument("--register", metavar="FOLDER", action="append", default=[], help="register a scene folder first")


def main(args: argparse.Namespace) -> int:
    for folder in args.register:
        register_scene(folder)
    if not args.name:
        for name in scene_names():
            print(f"{name:12s} {env_id(name):24s} {get_scene(name).spec.description}")
        return 0
    scene = get_scene(args.name)
    s = scene.spec
    print(f"{s.name}: {s.description}\n  source: {s.source}\n  env id: {env_id(s.name)}")
    print(f"  frames/s: {scene.fps():g} (frame_skip {s.frame_skip} x timestep {scene.timestep:g} s), max frames {s.max_frames}")
    print(f"  cameras: {', '.join(s.cameras)}; actions: {s.actions.kind} ({scene.model.nu})")
    for o in s.objects:
        print(f"  object {o.name}: {o.colour_name} {o.shape} {list(o.colour)}{' (optional)' if o.optional else ''}")
    for n, q in s.quantities.items():
        rng = f"value {q.value:g}" if q.mode == "fixed" else f"id {list(q.id)} ood {[list(r) for r in q.ood]}"
        print(f"  {n:10s} {q.mode:11s} {rng}")
    if s.reward is not None:
        r = s.reward
        print(f"  reward: -distance of {r.object} to site {r.goal}; success within {r.success_radius:g} m")
    if s.occluder is not None:
        o = s.occluder
        print(f"  occluder: geom {o.geom} hides {o.object}; violations vanish, teleport ({o.teleport:g} m), "
              f"recolour ({o.recolour_name})")
    return 0

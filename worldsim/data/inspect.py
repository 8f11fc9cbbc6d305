"""`worldsim inspect STORE`: what a store holds (episodes, frames, sizes, parameter ranges, splits), and one
episode exported to mp4/gif with its caption beside it, and a contact-sheet PNG.

    worldsim inspect out.zarr
    worldsim inspect out.zarr --episode 3 --split val --video ep3.mp4 --sheet ep3.png
    worldsim inspect out.zarr --verify      # decode every chunk of every committed episode
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from worldsim.data.store import EpisodeStore, open_store
from worldsim.errors import ConfigError


def _disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


FULL_VIEW = 0.9  # share of an object's pixels in view for its centroid to count as its position


def action_displacement(store: EpisodeStore, split: str, episodes: int = 64) -> dict | None:
    """How the actions move things on screen: for each object, the least-squares map from the action into a frame
    to its centroid's step into that frame, both frames in full view (px at a 32-px frame height,
    `worldsim.models.warp`'s unit), over the
    first `episodes` committed episodes; the object the actions explain best (highest R²) is reported, with its map
    as 2 rows (dx, dy) of A columns: `model.warp_init` for `overrides.action_warp`. None without actions or objects."""
    done = store.committed(split)[:episodes]
    if not len(done) or not store.attrs["objects"] or not store.attrs["nu"]:
        return None
    acts, steps = [], []
    for i in done:
        e = store.episode(split, int(i), ["actions", "object_centroid", "object_visible"])
        # a partly hidden object's centroid moves with its visible part, not with it: steps in full view only
        vis = e["object_visible"] >= FULL_VIEW                                                       # (T, K)
        seen = vis[1:] & vis[:-1]                                                                    # (T-1, K)
        step = np.where(seen[..., None], e["object_centroid"][1:] - e["object_centroid"][:-1], np.nan)  # (T-1, K, 2)
        acts.append(e["actions"][:-1])
        steps.append(step)
    a, d = np.concatenate(acts).astype(np.float64), np.concatenate(steps) * 32 / store.attrs["resolution"][0]
    best = None
    for k, name in enumerate(store.attrs["objects"]):
        ok = np.isfinite(d[:, k]).all(-1)
        if ok.sum() <= a.shape[1]:
            continue
        X, Y = a[ok], d[ok, k]
        W = np.linalg.lstsq(X, Y, rcond=None)[0]                                                    # (A, 2)
        total = ((Y - Y.mean(0)) ** 2).sum()
        r2 = float(1 - ((Y - X @ W) ** 2).sum() / total) if total > 0 else 0.0
        if best is None or r2 > best["r2"]:
            best = {"object": name, "per_action": np.round(W.T, 3).tolist(), "r2": round(r2, 3), "steps": int(ok.sum())}
    return best


def summary(store: EpisodeStore) -> dict:
    """Episodes, frames, bytes and parameter ranges per split, the store's attributes, and how the actions move the
    object they move most (`action_displacement`, on the first split)."""
    a = store.attrs
    out = {"path": str(store.path), "scene": a["scene"], "resolution": a["resolution"], "fps": a["fps"],
           "frame_skip": a["frame_skip"], "frames_per_episode": a["frames_per_episode"],
           "schema_version": a["schema_version"], "worldsim_version": a["worldsim_version"], "splits": {}}
    for split in store.splits():
        g = store.split(split)
        done = store.committed(split)
        lengths = g["episode_length"][:][done] if len(done) else np.zeros(0)
        ranges: dict[str, list[float]] = {}
        for p in g["params"][:][done] if len(done) else []:
            for name, v in json.loads(str(p)).items():
                vals = [x for x in (v if isinstance(v, list) else [v]) if isinstance(x, (int, float))]
                if vals:
                    lo, hi = ranges.get(name, [math.inf, -math.inf])
                    ranges[name] = [min(lo, *vals), max(hi, *vals)]
        raw = int(lengths.sum()) * a["resolution"][0] * a["resolution"][1] * 3
        disk = _disk_bytes(Path(store.path) / split) if isinstance(store.path, Path) else None
        out["splits"][split] = {
            "episodes": len(done), "slots": int(g["committed"].shape[0]), "frames": int(lengths.sum()),
            "distribution": g.attrs["distribution"], "policy": g.attrs["policy"], "ranges": g.attrs["ranges"],
            "raw_frame_bytes": raw, "disk_bytes": disk, "param_ranges": ranges,
        }
    splits = store.splits()
    out["action_px"] = action_displacement(store, splits[0]) if splits else None
    return out


def _format(s: dict) -> str:
    lines = [f"{s['path']}: {s['scene']} {s['resolution'][0]}x{s['resolution'][1]} px, {s['fps']:g} frames/s, "
             f"frame skip {s['frame_skip']}, {s['frames_per_episode']} frames per episode "
             f"(schema v{s['schema_version']}, worldsim {s['worldsim_version']})"]
    for name, sp in s["splits"].items():
        ratio = f", frames {sp['raw_frame_bytes'] / sp['disk_bytes']:.0f}x smaller on disk" if sp["disk_bytes"] else ""
        mb = f"{sp['disk_bytes'] / 1e6:.2f} MB" if sp["disk_bytes"] is not None else "? MB"
        lines.append(f"  {name}: {sp['episodes']}/{sp['slots']} episodes committed, {sp['frames']} frames, {mb}{ratio}; "
                     f"distribution {sp['distribution']}, policy {sp['policy']['name']}")
        for q, (lo, hi) in sp["param_ranges"].items():
            lines.append(f"    {q:10s} {lo:10.4g} .. {hi:<10.4g}")
    m = s["action_px"]
    if m is not None:
        lines.append(f"  actions move {m['object']} by (dx, dy) = {m['per_action']} px per unit action at a 32-px height "
                     f"(R² {m['r2']:.2f} over {m['steps']} steps; model.warp_init)")
    return "\n".join(lines)


def export_video(store: EpisodeStore, split: str, index: int, path: str | Path) -> tuple[Path, str]:
    """Write an episode to mp4/gif and its caption to a `.txt` beside it; return the video path and caption."""
    from worldsim.viz.video import write_video

    path = Path(path)
    if path.suffix not in (".mp4", ".gif"):
        raise ConfigError(f"expected a .mp4 or .gif path, got {path.name!r}", field="--video")
    ep = store.episode(split, index, ["frames", "caption"])
    write_video(path, ep["frames"], fps=store.attrs["fps"])
    path.with_suffix(".txt").write_text(ep["caption"] + "\n", encoding="utf-8")
    return path, ep["caption"]


def contact_sheet(store: EpisodeStore, split: str, index: int, path: str | Path, tiles: int = 16) -> Path:
    """A PNG grid of up to `tiles` evenly spaced frames of an episode, titled with its caption."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = store.episode(split, index, ["frames", "caption", "camera"])
    frames = ep["frames"]
    picks = np.unique(np.linspace(0, len(frames) - 1, min(tiles, len(frames))).round().astype(int))
    cols = min(len(picks), 8)
    rows = -(-len(picks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    cams = store.attrs["cameras"]
    for ax, t in zip(axes.ravel(), picks):
        ax.imshow(frames[t], interpolation="nearest")
        ax.set_title(f"t={t} {cams[int(ep['camera'][t])]}", fontsize=7)
    fig.suptitle(f"{store.attrs['scene']} {split} #{index}: {ep['caption'] or '(no caption)'}", fontsize=8, wrap=True)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="a worldsim store")
    p.add_argument("--split", default="train", help="split of the episode to export (default: %(default)s)")
    p.add_argument("--episode", type=int, default=None, help="episode index to export (default: the first committed)")
    p.add_argument("--video", type=Path, help="write the episode to this .mp4 or .gif (caption in a .txt beside it)")
    p.add_argument("--sheet", type=Path, help="write a contact-sheet PNG of the episode")
    p.add_argument("--verify", action="store_true", help="decode every chunk of every committed episode")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def main(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    s = summary(store)
    if args.verify:
        s["verified_episodes"] = store.verify()
    print(json.dumps(s) if args.json else _format(s))
    if args.verify and not args.json:
        print(f"verified: every chunk of {s['verified_episodes']} committed episodes decodes")
    if args.video or args.sheet:
        index = args.episode
        if index is None:
            done = store.committed(args.split)
            if not len(done):
                raise ConfigError(f"split {args.split!r} has no committed episode", field="--split")
            index = int(done[0])
        if args.video:
            path, caption = export_video(store, args.split, index, args.video)
            print(f"wrote {path} ({caption or 'no caption'})")
        if args.sheet:
            print(f"wrote {contact_sheet(store, args.split, index, args.sheet)}")
    return 0

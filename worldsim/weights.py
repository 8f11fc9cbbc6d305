"""Exported weights: the one file format that rollouts, evaluation, notebooks and users share.

A `.safetensors` file (no pickle: loading it cannot run code) whose header metadata holds a JSON document with a
format version, the model config, what the model was trained for (scene, resolution, frame skip, frame rate,
cameras, action size, conditioned parameters), the resolved training config, the git commit and the data. A
SHA-256 over the tensors' names, dtypes, shapes and bytes is stored beside them, so a file changed after export,
or cut short, is refused with a clear error instead of giving silently wrong physics. Lightning checkpoints
(pickles) are only ever read when resuming one's own run; this is what leaves the run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from worldsim.errors import WeightsError

FORMAT = "worldsim-weights"
FORMAT_VERSION = 1


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_weights(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any],
                 dtype: torch.dtype | None = None) -> Path:
    """Write tensors and `meta` (JSON-serialisable) atomically: a temporary file renamed over the target.

    `dtype` (e.g. torch.float16) stores floating tensors at that precision to keep shipped files small."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        out[name] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
    header = {"format": FORMAT, "format_version": str(FORMAT_VERSION), "sha256": tensor_digest(out),
              "meta": json.dumps(meta, sort_keys=True)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(out, tmp, metadata=header)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes the file private; a weights file is as shareable as any
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _umask() -> int:
    """The process's umask (reading it means setting it, so it is set back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_meta(path: str | Path) -> dict[str, Any]:
    """The metadata of a weights file, without reading its tensors (checks the format and version)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError("weights file not found", source=path, field="path")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"not a readable safetensors file (truncated or corrupt?): {e}", source=path,
                           field="header") from None
    if header.get("format") != FORMAT:
        raise WeightsError(f"not a worldsim weights file (format {header.get('format')!r})", source=path, field="format")
    if header.get("format_version") != str(FORMAT_VERSION):
        raise WeightsError(f"format version {header.get('format_version')!r}; this worldsim reads {FORMAT_VERSION}",
                           source=path, field="format_version")
    try:
        return json.loads(header["meta"])
    except (KeyError, json.JSONDecodeError) as e:
        raise WeightsError(f"metadata is not valid JSON: {e}", source=path, field="meta") from None


def load_weights(path: str | Path, dtype: torch.dtype | None = torch.float32
                 ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors (floating ones cast to `dtype`; None: as stored) and metadata of a weights file, after checking its
    digest."""
    path = Path(path)
    meta = read_meta(path)
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as f:
            expected = (f.metadata() or {}).get("sha256")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"cannot read tensors (truncated or corrupt?): {e}", source=path, field="tensors") from None
    if tensor_digest(tensors) != expected:
        raise WeightsError("tensor contents do not match the stored SHA-256: the file was changed after export",
                           source=path, field="sha256")
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in tensors.items()}, meta


def check_compatible(meta: dict[str, Any], path: str | Path, **expected: Any) -> None:
    """Refuse weights trained for another scene, resolution, frame skip, ...: `expected` names meta['scene'] keys."""
    scene = meta.get("scene", {})
    for key, want in expected.items():
        have = scene.get(key)
        if isinstance(have, list) and isinstance(want, tuple):
            want = list(want)
        if key == "resolution" and isinstance(have, list) and have and isinstance(have[0], list):
            if list(want) not in have:
                raise WeightsError(f"weights were trained at {have}, not {list(want)}", source=path, field=f"scene.{key}")
            continue
        if have != want:
            raise WeightsError(f"weights were trained for {key}={have!r}, not {want!r}", source=path, field=f"scene.{key}")

"""Exported weights: round trip, and refusal of tampered, truncated, foreign or mismatched files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from worldsim.errors import WeightsError
from worldsim.weights import check_compatible, load_weights, read_meta, save_weights

META = {"scene": {"name": "bounce", "resolution": [[32, 32], [24, 40]], "frame_skip": 200, "fps": 25.0}}


@pytest.fixture
def weights(tmp_path):
    torch.manual_seed(0)
    tensors = {"w": torch.randn(8, 4), "b": torch.randn(4), "steps": torch.tensor([3])}
    return save_weights(tmp_path / "m.safetensors", tensors, META), tensors


def test_round_trip(weights):
    path, tensors = weights
    loaded, meta = load_weights(path)
    assert meta == META
    for k in tensors:
        assert torch.equal(loaded[k], tensors[k])


def test_saved_file_is_readable_as_the_umask_allows(weights):
    """Written through a private temporary file, the weights still get the mode any new file would (shipped files
    re-exported in place must stay readable by everyone)."""
    import os

    mask = os.umask(0o022)
    try:
        path = save_weights(weights[0], weights[1], META)
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644


def test_fp16_storage_halves_the_file(tmp_path):
    t = {"w": torch.randn(256, 256)}
    full = save_weights(tmp_path / "a.safetensors", t, META).stat().st_size
    half = save_weights(tmp_path / "b.safetensors", t, META, dtype=torch.float16).stat().st_size
    assert half < 0.6 * full
    loaded, _ = load_weights(tmp_path / "b.safetensors")
    assert loaded["w"].dtype == torch.float32 and torch.allclose(loaded["w"], t["w"], atol=1e-2)


def test_tampered_tensor_bytes(weights):
    path, _ = weights
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF  # flip a byte inside the last tensor
    path.write_bytes(bytes(raw))
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert str(path) in str(e.value) and "sha256" in str(e.value)


def test_truncated_file(weights):
    path, _ = weights
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(WeightsError) as e:
        load_weights(path)
    assert str(path) in str(e.value) and "truncated" in str(e.value)


def test_not_worldsim_weights(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(WeightsError) as e:
        read_meta(path)
    assert "format" in str(e.value)


def test_future_format_version(tmp_path):
    path = tmp_path / "future.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "worldsim-weights", "format_version": "99",
                                                           "meta": json.dumps(META)})
    with pytest.raises(WeightsError) as e:
        read_meta(path)
    assert "format_version" in str(e.value) and "99" in str(e.value)


def test_mismatched_scene_or_setting(weights):
    path, _ = weights
    _, meta = load_weights(path)
    check_compatible(meta, path, name="bounce", frame_skip=200, resolution=(24, 40))
    with pytest.raises(WeightsError) as e:
        check_compatible(meta, path, name="push")
    assert "scene.name" in str(e.value)
    with pytest.raises(WeightsError) as e:
        check_compatible(meta, path, frame_skip=100)
    assert "scene.frame_skip" in str(e.value)
    with pytest.raises(WeightsError) as e:
        check_compatible(meta, path, resolution=(64, 64))
    assert "scene.resolution" in str(e.value)

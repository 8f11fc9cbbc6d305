"""Spacetime patch ops: the torch reference (shapes, layout, identity, packing, fused ops, errors), the CUDA
source compiling to PTX, and, on a CUDA GPU only, the CuPy kernels equal to the reference bit for bit."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import torch

from worldsim import kernels
from worldsim.errors import ConfigError
from worldsim.kernels import cuda, cuda_source, dispatch, reference

SIZES = [((1, 4, 4), (4, 16, 16)), ((1, 4, 4), (3, 8, 24)), ((2, 2, 4), (6, 10, 8)), ((1, 8, 8), (2, 64, 32)),
         ((3, 1, 1), (3, 2, 5))]


@pytest.mark.parametrize("patch,size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.uint8])
def test_patchify_unpatchify_identity(patch, size, dtype):
    T, H, W = size
    x = (torch.rand(2, T, 3, H, W) * 200).to(dtype)
    tok = kernels.patchify(x, patch)
    pt, ph, pw = patch
    assert tok.shape == (2, (T // pt) * (H // ph) * (W // pw), 3 * pt * ph * pw)
    assert torch.equal(kernels.unpatchify(tok, patch, size), x)


def test_token_layout_is_t_h_w_by_c_pt_ph_pw():
    """One pixel lands where the documented layout says: token (t', h', w'), entry (c, dt, dy, dx)."""
    patch, (T, H, W) = (2, 2, 4), (4, 6, 8)
    x = torch.zeros(1, T, 3, H, W)
    b, t, c, y, xx = 0, 3, 2, 5, 6
    x[b, t, c, y, xx] = 1.0
    tok = kernels.patchify(x, patch)
    n = ((t // 2) * (H // 2) + y // 2) * (W // 4) + xx // 4
    d = ((c * 2 + t % 2) * 2 + y % 2) * 4 + xx % 4
    assert tok[0, n, d] == 1.0 and tok.sum() == 1.0


def test_pack_videos_of_several_sizes_and_aspects():
    patch = (1, 4, 4)
    videos = [torch.randn(T, 3, H, W) for T, H, W in [(4, 16, 16), (2, 8, 32), (6, 24, 8), (1, 4, 4)]]
    packed = kernels.pack(videos, patch)
    assert packed.lengths == [64, 32, 72, 1]
    assert packed.tokens.shape == (sum(packed.lengths), 48)
    for v, t in zip(videos, packed.split()):
        assert torch.equal(t, kernels.patchify(v[None], patch)[0])
    for v, back in zip(videos, kernels.unpack(packed)):
        assert torch.equal(back, v)


def test_uint8_normalisation_fused_with_patchify():
    x = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8)
    x[0, 0, 0, 0, :2] = torch.tensor([0, 255], dtype=torch.uint8)
    tok = kernels.patchify_uint8(x, (1, 4, 4))
    assert tok.dtype == torch.float32
    assert torch.equal(tok, kernels.patchify(x.float() * reference.SCALE - 1.0, (1, 4, 4)))
    assert tok[0, 0, 0] == -1.0 and tok[0, 0, 1] == 1.0
    assert tok.min() >= -1.0 and tok.max() <= 1.0
    assert kernels.patchify_uint8(x, (1, 4, 4), torch.bfloat16).dtype == torch.bfloat16


def test_uint8_noised_gives_clean_and_noised_tokens():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (2, 4, 3, 8, 8), dtype=torch.uint8, generator=g)
    noise = torch.randn(x.shape, generator=g)
    sigma = torch.tensor([[0.0, 0.5, 1.0, 2.0], [3.0, 0.0, 0.1, 0.2]])
    x0, xt = kernels.patchify_uint8_noised(x, noise, sigma, (1, 4, 4))
    assert torch.equal(x0, kernels.patchify_uint8(x, (1, 4, 4)))
    expect = kernels.patchify(reference.normalize_uint8(x) + sigma[:, :, None, None, None] * noise, (1, 4, 4))
    assert torch.equal(xt, expect)
    assert torch.equal(xt[0, :4], x0[0, :4])  # frame 0 of clip 0 has sigma 0 (4 tokens per frame)


@pytest.mark.parametrize("shape,patch,field", [
    ((1, 4, 3, 15, 16), (1, 4, 4), "x"), ((1, 3, 3, 16, 16), (2, 4, 4), "x"),
    ((4, 3, 16, 16), (1, 4, 4), "x"), ((1, 4, 3, 16, 16), (1, 0, 4), "patch")])
def test_bad_sizes_raise_config_error(shape, patch, field):
    with pytest.raises(ConfigError) as e:
        kernels.patchify(torch.zeros(shape), patch)
    assert e.value.field == field and e.value.source == "patchify"


def test_unpatchify_and_pack_errors():
    with pytest.raises(ConfigError, match="do not fit") as e:
        kernels.unpatchify(torch.zeros(1, 10, 48), (1, 4, 4), (1, 16, 16))
    assert e.value.field == "tokens"
    with pytest.raises(ConfigError) as e:
        kernels.pack([torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 8, 8)], (1, 4, 4))
    assert "channels" in e.value.message
    with pytest.raises(ConfigError, match="uint8"):
        kernels.patchify_uint8(torch.zeros(1, 1, 3, 4, 4), (1, 4, 4))


def test_cpu_always_takes_the_torch_path(monkeypatch):
    monkeypatch.setenv("WORLDSIM_PATCH_KERNELS", "cupy")
    assert not dispatch.use_kernel("patchify", torch.zeros(1))
    monkeypatch.setenv("WORLDSIM_PATCH_KERNELS", "fast")
    with pytest.raises(ConfigError) as e:
        dispatch.use_kernel("patchify", _FakeCuda())
    assert e.value.field == "WORLDSIM_PATCH_KERNELS"


class _FakeCuda:
    """Stands in for a CUDA tensor on a machine without one: only `.device` is read before the mode check."""

    device = torch.device("cuda", 0)


def test_cuda_source_compiles_to_ptx(tmp_path):
    nvcc = shutil.which("nvcc") or (shutil.which("/usr/local/cuda/bin/nvcc"))
    if nvcc is None:
        pytest.skip("no CUDA compiler (nvcc) on this machine to check the kernel source")
    src = tmp_path / "patch_kernels.cu"
    src.write_text(cuda_source.SOURCE)
    out = subprocess.run([nvcc, "-ptx", "-arch=compute_80", str(src), "-o", str(tmp_path / "k.ptx")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    for name in cuda_source.KERNEL_NAMES:
        assert f".entry {name}(" in ptx, name
    assert "fma.rn.f32" not in ptx  # no contracted multiply-adds: results must equal torch's two roundings


_GPU = torch.cuda.is_available() and cuda.available()
gpu = pytest.mark.skipif(not _GPU, reason="needs a CUDA GPU and CuPy (pip install 'worldsim[cuda]'); none here")


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize("patch,size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kernels_equal_reference_bit_for_bit(patch, size, dtype):
    T, H, W = size
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (2, T, 3, H, W), dtype=torch.uint8, generator=g).cuda()
    noise = torch.randn(u8.shape, generator=g).cuda()
    sigma = torch.rand(2, T, generator=g).cuda() * 3
    x = reference.normalize_uint8(u8, dtype)
    tok = cuda.patchify(x, patch)
    assert torch.equal(tok.view(torch.int16 if dtype == torch.bfloat16 else torch.int32),
                       reference.patchify(x, patch).view(torch.int16 if dtype == torch.bfloat16 else torch.int32))
    assert torch.equal(cuda.unpatchify(tok, patch, x.shape), x)
    assert torch.equal(cuda.patchify_uint8(u8, patch, dtype), reference.patchify_uint8(u8, patch, dtype))
    for got, want in zip(cuda.patchify_uint8_noised(u8, noise, sigma, patch, dtype),
                         reference.patchify_uint8_noised(u8, noise, sigma, patch, dtype)):
        assert torch.equal(got, want)


@gpu
@pytest.mark.gpu
def test_kernel_bandwidth_against_copy(capsys):
    """Each op's GB/s, kernel and torch, beside the device's copy bandwidth; the fused op must beat torch."""
    dev = torch.device("cuda")
    copy = dispatch.copy_bandwidth(dev)
    rows = [dispatch.measure(op, dev) for op in dispatch.OPS]
    with capsys.disabled():
        print(f"\ncopy bandwidth {copy:.0f} GB/s")
        for t in rows:
            print(f"{t.op:24s} kernel {t.gbps('kernel'):7.0f} GB/s  torch {t.gbps('torch'):7.0f} GB/s  "
                  f"-> {'kernel' if t.use_kernel else 'torch'}")
    fused = {t.op: t for t in rows}["patchify_uint8_noised"]
    assert fused.kernel_s < fused.torch_s
    assert all(t.gbps("kernel") < 1.2 * copy for t in rows)  # a sanity bound: nothing beats the copy engine

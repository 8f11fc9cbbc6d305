"""CUDA C source of the patch kernels, compiled at run time by CuPy (NVRTC) and checked by `nvcc -ptx` in tests.

No CUDA headers are included (bf16 is stored as `unsigned short`, rounded to nearest even as torch does), so
NVRTC needs no include path. One thread moves one run of `pw` pixels: contiguous in the video along W and
contiguous in the token along D, so both reads and writes are coalesced. Arithmetic uses the `_rn` intrinsics so
the compiler cannot contract a multiply and an add into an FMA: results equal the torch reference bit for bit.
"""

KERNEL_NAMES = (
    "patchify_copy_1", "patchify_copy_2", "patchify_copy_4",
    "unpatchify_copy_1", "unpatchify_copy_2", "unpatchify_copy_4",
    "patchify_u8_f32", "patchify_u8_bf16",
    "patchify_u8_noised_f32", "patchify_u8_noised_bf16",
)

SOURCE = r"""
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef long long i64;

struct Geo {  // video (B, T, C, H, W), patch (pt, ph, pw); tokens (B, N, D)
    i64 B, T, C, H, W; int pt, ph, pw;
};

// For run r (one pw-wide run of pixels): its offset in the video and in the token tensor, and its frame b*T+t.
__device__ __forceinline__ void run_offsets(const Geo g, i64 r, i64* src, i64* dst, i64* frame) {
    const i64 Wr = g.W / g.pw;
    i64 xr = r % Wr; i64 q = r / Wr;
    i64 y = q % g.H; q /= g.H;
    i64 c = q % g.C; q /= g.C;
    i64 t = q % g.T; i64 b = q / g.T;
    const i64 Tp = g.T / g.pt, Hp = g.H / g.ph, Wp = Wr;
    const i64 D = g.C * g.pt * g.ph * g.pw;
    const i64 n = ((t / g.pt) * Hp + (y / g.ph)) * Wp + xr;
    const i64 d = ((c * g.pt + t % g.pt) * g.ph + y % g.ph) * g.pw;
    *src = (((b * g.T + t) * g.C + c) * g.H + y) * g.W + xr * g.pw;
    *dst = (b * (Tp * Hp * Wp) + n) * D + d;
    *frame = b * g.T + t;
}

__device__ __forceinline__ i64 n_runs(const Geo g) { return g.B * g.T * g.C * g.H * (g.W / g.pw); }

__device__ __forceinline__ float u8_to_unit(u8 v, float scale) {
    return __fsub_rn(__fmul_rn((float)v, scale), 1.0f);
}

__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(u16* p, float v) {  // float -> bf16, round to nearest even (finite inputs)
    u32 u = __float_as_uint(v);
    u += 0x7fffu + ((u >> 16) & 1u);
    *p = (u16)(u >> 16);
}

template <typename E>
__device__ void patchify_copy(const E* __restrict__ x, E* __restrict__ out, const Geo g) {
    for (i64 r = blockIdx.x * (i64)blockDim.x + threadIdx.x; r < n_runs(g); r += (i64)gridDim.x * blockDim.x) {
        i64 s, d, f; run_offsets(g, r, &s, &d, &f);
        for (int j = 0; j < g.pw; ++j) out[d + j] = x[s + j];
    }
}

template <typename E>
__device__ void unpatchify_copy(const E* __restrict__ tok, E* __restrict__ x, const Geo g) {
    for (i64 r = blockIdx.x * (i64)blockDim.x + threadIdx.x; r < n_runs(g); r += (i64)gridDim.x * blockDim.x) {
        i64 s, d, f; run_offsets(g, r, &s, &d, &f);
        for (int j = 0; j < g.pw; ++j) x[s + j] = tok[d + j];
    }
}

template <typename O>
__device__ void patchify_u8(const u8* __restrict__ x, O* __restrict__ out, const Geo g, float scale) {
    for (i64 r = blockIdx.x * (i64)blockDim.x + threadIdx.x; r < n_runs(g); r += (i64)gridDim.x * blockDim.x) {
        i64 s, d, f; run_offsets(g, r, &s, &d, &f);
        for (int j = 0; j < g.pw; ++j) store(out + d + j, u8_to_unit(x[s + j], scale));
    }
}

// x0 = x * scale - 1 and xt = x0 + sigma[frame] * noise, both written as tokens: reads the uint8 clip and the noise
// once instead of the reference's five passes (normalise, scale noise, add, patchify twice).
template <typename O>
__device__ void patchify_u8_noised(const u8* __restrict__ x, const float* __restrict__ noise,
                                   const float* __restrict__ sigma, O* __restrict__ x0, O* __restrict__ xt,
                                   const Geo g, float scale) {
    for (i64 r = blockIdx.x * (i64)blockDim.x + threadIdx.x; r < n_runs(g); r += (i64)gridDim.x * blockDim.x) {
        i64 s, d, f; run_offsets(g, r, &s, &d, &f);
        const float sg = sigma[f];
        for (int j = 0; j < g.pw; ++j) {
            const float v = u8_to_unit(x[s + j], scale);
            store(x0 + d + j, v);
            store(xt + d + j, __fadd_rn(v, __fmul_rn(sg, noise[s + j])));
        }
    }
}

#define GEO_ARGS i64 B, i64 T, i64 C, i64 H, i64 W, int pt, int ph, int pw
#define GEO Geo{B, T, C, H, W, pt, ph, pw}

extern "C" {
__global__ void patchify_copy_1(const u8* x, u8* o, GEO_ARGS) { patchify_copy<u8>(x, o, GEO); }
__global__ void patchify_copy_2(const u16* x, u16* o, GEO_ARGS) { patchify_copy<u16>(x, o, GEO); }
__global__ void patchify_copy_4(const u32* x, u32* o, GEO_ARGS) { patchify_copy<u32>(x, o, GEO); }
__global__ void unpatchify_copy_1(const u8* t, u8* x, GEO_ARGS) { unpatchify_copy<u8>(t, x, GEO); }
__global__ void unpatchify_copy_2(const u16* t, u16* x, GEO_ARGS) { unpatchify_copy<u16>(t, x, GEO); }
__global__ void unpatchify_copy_4(const u32* t, u32* x, GEO_ARGS) { unpatchify_copy<u32>(t, x, GEO); }
__global__ void patchify_u8_f32(const u8* x, float* o, GEO_ARGS, float scale) { patchify_u8<float>(x, o, GEO, scale); }
__global__ void patchify_u8_bf16(const u8* x, u16* o, GEO_ARGS, float scale) { patchify_u8<u16>(x, o, GEO, scale); }
__global__ void patchify_u8_noised_f32(const u8* x, const float* n, const float* s, float* x0, float* xt, GEO_ARGS,
                                       float scale) { patchify_u8_noised<float>(x, n, s, x0, xt, GEO, scale); }
__global__ void patchify_u8_noised_bf16(const u8* x, const float* n, const float* s, u16* x0, u16* xt, GEO_ARGS,
                                        float scale) { patchify_u8_noised<u16>(x, n, s, x0, xt, GEO, scale); }
}
"""

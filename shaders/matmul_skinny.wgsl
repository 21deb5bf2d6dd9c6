// matmul_skinny.wgsl: y = act(ln?(x) · w + b) (+ res) for few rows of x.
//
// The same computation, flags, uniform block and bindings as matmul_bias.wgsl
// (one bind group layout serves both), shaped for M ≤ 16: appending a token
// with the KV cache computes one row per matmul, and the LM head computes only
// the last position. matmul_bias.wgsl pads M to 64-row tiles, so one row would
// cost as much as 64; here a row costs one pass over w.
//
// Flags (see matmul_bias.wgsl): FLAG_LN, FLAG_WRITE_LN, FLAG_B_T, FLAG_BIAS,
// act (0 none, 1 GELU tanh, 2 GELU erf, 3 ReLU), FLAG_RESIDUAL, FLAG_WRITE_PRE.
//
// Shapes (row-major f32), as in matmul_bias.wgsl:
//   x[·×K] rows xrow0 .. xrow0+M; w[K×N], or [N×K] with FLAG_B_T; b[N]; ln[2K]
//   y at y[(yrow0 + r)·ldy + ycol0 + c]; res, pre [·×N] at row yrow0 + r;
//   ln_out [·×K] at row xrow0 + r.
// Tiling: a workgroup of 64 invocations computes 4 rows × 256 columns of y.
// Invocation i owns columns col0 + i + 64·j (j < 4), so neighbouring
// invocations read neighbouring words of w (coalesced on a GPU, contiguous
// SIMD loads on a CPU adapter). The 4 rows of x are staged 256 k at a time in
// workgroup memory (layernormed as they are loaded) and broadcast. With
// FLAG_B_T, w[N×K] is staged through workgroup memory 8 k × 256 columns at a
// time, read along k, so the loads stay contiguous too. Out-of-range rows,
// columns and k are loaded as 0 and never written: correct for any M, N, K ≥ 1.
// Workgroup 64; dispatch (ceil(N/256), ceil(M/4), 1).
// CPU reference: engine::ops::matmul_bias, layernorm, activate, lm_head, add.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    xrow0: u32,
    yrow0: u32,
    ldy: u32,
    ycol0: u32,
    flags: u32,
    act: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

const FLAG_LN: u32 = 1u;
const FLAG_WRITE_LN: u32 = 2u;
const FLAG_B_T: u32 = 4u;
const FLAG_BIAS: u32 = 8u;
const FLAG_RESIDUAL: u32 = 16u;
const FLAG_WRITE_PRE: u32 = 32u;

const ROWS: u32 = 4u;
const COLS: u32 = 256u;
const CHUNK_K: u32 = 256u;
const TILE_K_T: u32 = 8u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read> ln: array<f32>;
@group(0) @binding(7) var<storage, read_write> ln_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> pre: array<f32>;

var<workgroup> x_chunk: array<f32, 1024>; // [4 rows × 256 k]
var<workgroup> w_tile: array<f32, 2048>; // [8 k × 256 cols], FLAG_B_T only
var<workgroup> partial: array<f32, 256>; // [4 rows × 64 invocations]
var<workgroup> row_mean: array<f32, 4>;
var<workgroup> row_rstd: array<f32, 4>;

fn has(flag: u32) -> bool {
    return (p.flags & flag) != 0u;
}

// Sums each row's 64 partial values (tid 0..3 sum one row each).
fn row_totals(tid: u32, sums: array<f32, 4>) -> array<f32, 4> {
    for (var r = 0u; r < ROWS; r++) {
        partial[r * 64u + tid] = sums[r];
    }
    workgroupBarrier();
    if tid < ROWS {
        var total = 0.0;
        for (var i = 0u; i < 64u; i++) {
            total += partial[tid * 64u + i];
        }
        row_mean[tid] = total; // scratch: the caller reads it back
    }
    workgroupBarrier();
    var out: array<f32, 4>;
    for (var r = 0u; r < ROWS; r++) {
        out[r] = row_mean[r];
    }
    workgroupBarrier();
    return out;
}

// Mean and 1/sqrt(var + eps) of the workgroup's 4 rows (two passes, as GPT-2).
fn layernorm_prologue(row0: u32, tid: u32) {
    var sums: array<f32, 4>;
    for (var r = 0u; r < ROWS; r++) {
        var s = 0.0;
        if row0 + r < p.m {
            let base = (p.xrow0 + row0 + r) * p.k;
            for (var c = tid; c < p.k; c += 64u) {
                s += x[base + c];
            }
        }
        sums[r] = s;
    }
    let totals = row_totals(tid, sums);
    var means: array<f32, 4>;
    for (var r = 0u; r < ROWS; r++) {
        means[r] = totals[r] / f32(p.k);
        var sq = 0.0;
        if row0 + r < p.m {
            let base = (p.xrow0 + row0 + r) * p.k;
            for (var c = tid; c < p.k; c += 64u) {
                let dev = x[base + c] - means[r];
                sq += dev * dev;
            }
        }
        sums[r] = sq;
    }
    let variances = row_totals(tid, sums);
    if tid < ROWS {
        row_mean[tid] = means[tid];
        row_rstd[tid] = 1.0 / sqrt(variances[tid] / f32(p.k) + p.eps);
    }
    workgroupBarrier();
}

fn erf_approx(v: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| ≤ 1.5e-7.
    let s = sign(v);
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}

fn activate(v: f32) -> f32 {
    switch p.act {
        case 1u: {
            let inner = clamp(0.7978846 * (v + 0.044715 * v * v * v), -15.0, 15.0);
            return 0.5 * v * (1.0 + tanh(inner));
        }
        case 2u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678)); }
        case 3u: { return max(v, 0.0); }
        default: { return v; }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let row0 = wg.y * ROWS;
    let col0 = wg.x * COLS;
    let normalise = has(FLAG_LN);
    if normalise {
        layernorm_prologue(row0, tid);
    }
    let write_ln = has(FLAG_WRITE_LN) && wg.x == 0u;
    let transposed = has(FLAG_B_T);
    // acc_r holds row r's 4 columns; rows past M are skipped (uniformly).
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let rows = min(ROWS, p.m - row0);
    // Columns past N read column N−1 (a valid address) and are never written.
    let last = p.n - 1u;
    let cols = vec4<u32>(
        min(col0 + tid, last),
        min(col0 + tid + 64u, last),
        min(col0 + tid + 128u, last),
        min(col0 + tid + 192u, last),
    );
    for (var k0 = 0u; k0 < p.k; k0 += CHUNK_K) {
        let len = min(CHUNK_K, p.k - k0);
        // Stage 4 rows × 256 k of x (0 past M and K).
        for (var at = tid; at < ROWS * CHUNK_K; at += 64u) {
            let r = at / CHUNK_K;
            let kk = at % CHUNK_K;
            var xv = 0.0;
            if row0 + r < p.m && kk < len {
                let src = (p.xrow0 + row0 + r) * p.k + k0 + kk;
                xv = x[src];
                if normalise {
                    xv = (xv - row_mean[r]) * row_rstd[r] * ln[k0 + kk] + ln[p.k + k0 + kk];
                    if write_ln {
                        ln_out[src] = xv;
                    }
                }
            }
            x_chunk[at] = xv;
        }
        workgroupBarrier();
        if transposed {
            for (var t0 = 0u; t0 < len; t0 += TILE_K_T) {
                // w[N×K]: 8 neighbouring invocations read 8 neighbouring k of one column.
                for (var at = tid; at < TILE_K_T * COLS; at += 64u) {
                    let c = min(col0 + at / TILE_K_T, last);
                    let kk = t0 + at % TILE_K_T;
                    var wv = 0.0;
                    if kk < len {
                        wv = w[c * p.k + k0 + kk];
                    }
                    w_tile[(at % TILE_K_T) * COLS + at / TILE_K_T] = wv;
                }
                workgroupBarrier();
                for (var kk = 0u; kk < TILE_K_T; kk++) {
                    let at = kk * COLS + tid;
                    let wv = vec4<f32>(w_tile[at], w_tile[at + 64u], w_tile[at + 128u], w_tile[at + 192u]);
                    let xk = t0 + kk;
                    acc0 += x_chunk[xk] * wv;
                    if rows > 1u {
                        acc1 += x_chunk[CHUNK_K + xk] * wv;
                    }
                    if rows > 2u {
                        acc2 += x_chunk[2u * CHUNK_K + xk] * wv;
                    }
                    if rows > 3u {
                        acc3 += x_chunk[3u * CHUNK_K + xk] * wv;
                    }
                }
                workgroupBarrier();
            }
        } else {
            for (var kk = 0u; kk < len; kk++) {
                let wrow = (k0 + kk) * p.n;
                let wv = vec4<f32>(w[wrow + cols.x], w[wrow + cols.y], w[wrow + cols.z], w[wrow + cols.w]);
                acc0 += x_chunk[kk] * wv;
                if rows > 1u {
                    acc1 += x_chunk[CHUNK_K + kk] * wv;
                }
                if rows > 2u {
                    acc2 += x_chunk[2u * CHUNK_K + kk] * wv;
                }
                if rows > 3u {
                    acc3 += x_chunk[3u * CHUNK_K + kk] * wv;
                }
            }
        }
        workgroupBarrier();
    }
    let accs = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < ROWS; r++) {
        let rr = row0 + r;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + tid + 64u * j;
            if rr < p.m && c < p.n {
                var v = accs[r][j];
                if has(FLAG_BIAS) {
                    v += b[c];
                }
                v = activate(v);
                let row = p.yrow0 + rr;
                if has(FLAG_WRITE_PRE) {
                    pre[row * p.n + c] = v;
                }
                if has(FLAG_RESIDUAL) {
                    v = res[row * p.n + c] + v;
                }
                y[row * p.ldy + p.ycol0 + c] = v;
            }
        }
    }
}

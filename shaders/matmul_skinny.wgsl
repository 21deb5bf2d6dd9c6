// matmul_skinny.wgsl: y = act(ln?(x) · w + b) (+ res) for few rows of x.
//
// The same computation, flags, uniform block and bindings as matmul_bias.wgsl
// (one bind group layout serves both), shaped for M ≤ 16: appending a token
// with the KV cache computes one row per matmul, and the LM head computes only
// the last position. matmul_bias.wgsl pads M to 64-row tiles, so one row would
// cost as much as 64; here a row costs one pass over w.
//
// w is read through w_at of matmul_weights_f32_scalar.wgsl or (the 16-bit
// pipeline, FLAG_W16) matmul_weights_16.wgsl.
// Flags (see matmul_bias.wgsl): FLAG_LN (FLAG_RMS: RMSNorm), FLAG_WRITE_LN, FLAG_B_T, FLAG_BIAS,
// act (0 none, 1 GELU tanh, 2 GELU erf, 3 ReLU, 4 SiLU), FLAG_RESIDUAL, FLAG_WRITE_PRE.
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
// Gated (GATED, see matmul_common.wgsl): a workgroup computes 4 rows × 128
// columns of y; invocation i's four w columns are the gate and up columns of
// y columns col0 + i and col0 + i + 64 (so neighbouring invocations still
// read neighbouring words, in two runs), and the epilogue has both.
// Workgroup 64; dispatch (ceil(N/256), ceil(M/4), 1), gated (ceil(N/128), ceil(M/4), 1).
// The uniform block, flags, shared bindings and the epilogue are in
// matmul_common.wgsl, prepended by gpu::kernels.
// CPU reference: engine::ops::matmul_bias, layernorm, activate, lm_head, add.

const ROWS: u32 = 4u;
const COLS: u32 = 256u;
const CHUNK_K: u32 = 256u;
const TILE_K_T: u32 = 8u;

@group(0) @binding(1) var<storage, read> x: array<f32>;

var<workgroup> x_chunk: array<f32, 1024>; // [4 rows × 256 k]
var<workgroup> w_tile: array<f32, 2048>; // [8 k × 256 cols], FLAG_B_T only
var<workgroup> partial: array<f32, 256>; // [4 rows × 64 invocations]
var<workgroup> row_mean: array<f32, 4>;
var<workgroup> row_rstd: array<f32, 4>;

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
        means[r] = select(totals[r] / f32(p.k), 0.0, has(FLAG_RMS));
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

// The column of w that tile column tc (0..256, invocation tc % 64's
// accumulator tc / 64) reads, clamped to a valid column: col0 + tc, or,
// gated, accumulator j of invocation i holds the gate (j even) or up (j odd)
// column of y column col0 + i + 64·(j / 2).
fn w_col(col0: u32, tc: u32) -> u32 {
    if GATED {
        let j = tc / 64u;
        return min(col0 + tc % 64u + 64u * (j / 2u), p.n - 1u) + (j % 2u) * p.n;
    }
    return min(col0 + tc, p.n - 1u);
}

// acc[r] holds row r's 4 columns (constant indices only: registers, not memory).
var<private> acc: array<vec4<f32>, 4>;

// Adds x[r, k]·w[k, cols] for the staged k `xk` to the first `rows` rows
// (rows past M are skipped, uniformly).
fn accumulate(xk: u32, wv: vec4<f32>, rows: u32) {
    acc[0] += x_chunk[xk] * wv;
    if rows > 1u {
        acc[1] += x_chunk[CHUNK_K + xk] * wv;
    }
    if rows > 2u {
        acc[2] += x_chunk[2u * CHUNK_K + xk] * wv;
    }
    if rows > 3u {
        acc[3] += x_chunk[3u * CHUNK_K + xk] * wv;
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let row0 = wg.y * ROWS;
    let col0 = wg.x * select(COLS, COLS / 2u, GATED);
    let normalise = has(FLAG_LN);
    if normalise {
        layernorm_prologue(row0, tid);
    }
    let write_ln = has(FLAG_WRITE_LN) && wg.x == 0u;
    let transposed = has(FLAG_B_T);
    let rows = min(ROWS, p.m - row0);
    // Columns past N read column N−1 (a valid address) and are never written.
    let cols = vec4<u32>(w_col(col0, tid), w_col(col0, tid + 64u), w_col(col0, tid + 128u), w_col(col0, tid + 192u));
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
                    let c = w_col(col0, at / TILE_K_T);
                    let kk = t0 + at % TILE_K_T;
                    var wv = 0.0;
                    if kk < len {
                        wv = w_at(c * p.k + k0 + kk);
                    }
                    w_tile[(at % TILE_K_T) * COLS + at / TILE_K_T] = wv;
                }
                workgroupBarrier();
                for (var kk = 0u; kk < TILE_K_T; kk++) {
                    let at = kk * COLS + tid;
                    let wv = vec4<f32>(w_tile[at], w_tile[at + 64u], w_tile[at + 128u], w_tile[at + 192u]);
                    accumulate(t0 + kk, wv, rows);
                }
                workgroupBarrier();
            }
        } else {
            for (var kk = 0u; kk < len; kk++) {
                let wrow = (k0 + kk) * w_stride();
                let wv = vec4<f32>(w_at(wrow + cols.x), w_at(wrow + cols.y), w_at(wrow + cols.z), w_at(wrow + cols.w));
                accumulate(kk, wv, rows);
            }
        }
        workgroupBarrier();
    }
    if GATED {
        for (var r = 0u; r < ROWS; r++) {
            let rr = row0 + r;
            for (var j = 0u; j < 2u; j++) {
                let c = col0 + tid + 64u * j;
                if rr < p.m && c < p.n {
                    store_gated(rr, c, acc[r][2u * j], acc[r][2u * j + 1u]);
                }
            }
        }
        return;
    }
    for (var r = 0u; r < ROWS; r++) {
        let rr = row0 + r;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + tid + 64u * j;
            if rr < p.m && c < p.n {
                store(rr, c, acc[r][j]);
            }
        }
    }
}

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
// Tiling: a workgroup of 256 invocations computes 4 rows × 64 columns of y,
// its invocations split as 16 column lanes × 16 slices of k. Invocation
// (lane c, slice s) owns columns col0 + c + 16·j (j < 4) and sums
// x[r, k]·w[k, col] over k ≡ s (mod 16), four k per step (16 loads of w in
// flight); the 16 slices' sums are added in workgroup memory at the end.
// Many workgroups with many loads each keep a large GPU's memory busy: with
// 64 invocations of 256 columns, one k at a time, an H200 ran 9 workgroups
// for N = 2304 and read w at 31 GB/s. Neighbouring invocations read
// neighbouring words of w: lanes are columns (c = tid % 16, s = tid / 16) for
// w[K×N], slices (s = tid % 16, c = tid / 16) for w[N×K] (FLAG_B_T), so 16
// invocations read 16 contiguous words either way (coalesced on a GPU,
// contiguous SIMD loads on a CPU adapter). The 4 rows of x are staged 256 k
// at a time in workgroup memory (normalised as they are loaded) and
// broadcast. Out-of-range rows, columns and k are loaded as 0 and never
// written: correct for any M, N, K ≥ 1.
// Gated (GATED, see matmul_common.wgsl): a workgroup computes 4 rows × 32
// columns of y; invocation (c, s)'s four columns of w are the gate and up
// columns of y columns col0 + c and col0 + c + 16 (`w_col`), and the
// epilogue has both.
// Workgroup 256; dispatch (tiles, ceil(M/4), 1) with tiles = ceil(N/64)
// (gated ceil(N/32)), or, past the 65,535 workgroups a dimension allows,
// (65535, ceil(M/4), ceil(tiles/65535)) (`gpu::MatmulParams::workgroups_for`);
// the tile is x + z·65535.
// The uniform block, flags, shared bindings and the epilogue are in
// matmul_common.wgsl, prepended by gpu::kernels.
// CPU reference: engine::ops::matmul_bias, layernorm, activate, lm_head, add.

const ROWS: u32 = 4u;
const LANES: u32 = 16u;
const SLICES: u32 = 16u;
const THREADS: u32 = 256u;
const CHUNK_K: u32 = 256u;
// Tile columns a workgroup reads from w (gated: 32 gate and 32 up).
const TILE: u32 = 64u;

@group(0) @binding(1) var<storage, read> x: array<f32>;

var<workgroup> x_chunk: array<f32, 1024>; // [4 rows × 256 k]
// Half the partial sums at a time: [4 rows × 16 slices × 32 tile columns];
// the norm's row sums use it too.
var<workgroup> partial: array<f32, 2048>;
var<workgroup> row_mean: array<f32, 4>;
var<workgroup> row_rstd: array<f32, 4>;

// Each row's total of the 256 invocations' `sums`: 64 invocations add 16
// each, then every invocation adds those 16.
fn row_totals(tid: u32, sums: array<f32, 4>) -> array<f32, 4> {
    for (var r = 0u; r < ROWS; r++) {
        partial[r * THREADS + tid] = sums[r];
    }
    workgroupBarrier();
    if tid < ROWS * 16u {
        var s = 0.0;
        for (var i = 0u; i < 16u; i++) {
            s += partial[(tid / 16u) * THREADS + (tid % 16u) * 16u + i];
        }
        partial[ROWS * THREADS + tid] = s;
    }
    workgroupBarrier();
    var out: array<f32, 4>;
    for (var r = 0u; r < ROWS; r++) {
        var s = 0.0;
        for (var i = 0u; i < 16u; i++) {
            s += partial[ROWS * THREADS + r * 16u + i];
        }
        out[r] = s;
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
            for (var c = tid; c < p.k; c += THREADS) {
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
            for (var c = tid; c < p.k; c += THREADS) {
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

// The column (row, transposed) of w that the invocation of lane `lane` reads
// for its accumulator j, clamped to a valid one: col0 + lane + 16·j, or,
// gated, the gate (j even) or up (j odd) column of y column
// col0 + lane + 16·(j / 2).
fn w_col(col0: u32, lane: u32, j: u32) -> u32 {
    if GATED {
        return min(col0 + lane + LANES * (j / 2u), p.n - 1u) + (j % 2u) * p.n;
    }
    return min(col0 + lane + LANES * j, p.n - 1u);
}

// acc[r] holds row r's 4 columns (constant indices only: registers, not memory).
var<private> acc: array<vec4<f32>, 4>;

// Adds x[r, kk]·wv for the staged k `kk` to the first `rows` rows (rows past
// M are skipped, uniformly).
fn accumulate(kk: u32, wv: vec4<f32>, rows: u32) {
    acc[0] += x_chunk[kk] * wv;
    if rows > 1u {
        acc[1] += x_chunk[CHUNK_K + kk] * wv;
    }
    if rows > 2u {
        acc[2] += x_chunk[2u * CHUNK_K + kk] * wv;
    }
    if rows > 3u {
        acc[3] += x_chunk[3u * CHUNK_K + kk] * wv;
    }
}

// Invocation (lane, slice)'s accumulators j0 and j0 + 1 of every row into
// `partial`, then the 128 outputs they make (4 rows × tile columns j0·16 ..
// j0·16 + 32) summed over slices and stored by invocations 0..128.
fn reduce_and_store(row0: u32, col0: u32, tid: u32, lane: u32, slice: u32, j0: u32) {
    for (var h = 0u; h < 2u; h++) {
        let at = (slice * 2u + h) * LANES + lane; // [slice][h][lane]
        let j = j0 + h;
        partial[at] = acc[0][j];
        partial[SLICES * 32u + at] = acc[1][j];
        partial[2u * SLICES * 32u + at] = acc[2][j];
        partial[3u * SLICES * 32u + at] = acc[3][j];
    }
    workgroupBarrier();
    if tid < ROWS * 32u {
        let r = tid / 32u;
        let hl = tid % 32u; // h·16 + lane
        var total = 0.0;
        var total_up = 0.0;
        for (var s = 0u; s < SLICES; s++) {
            total += partial[r * SLICES * 32u + s * 32u + hl];
        }
        let rr = row0 + r;
        if GATED {
            // Accumulators 0, 1 are y column col0 + lane's gate and up; 2, 3 col0 + lane + 16's.
            if hl < LANES {
                for (var s = 0u; s < SLICES; s++) {
                    total_up += partial[r * SLICES * 32u + s * 32u + LANES + hl];
                }
                let c = col0 + hl + LANES * (j0 / 2u);
                if rr < p.m && c < p.n {
                    store_gated(rr, c, total, total_up);
                }
            }
        } else {
            let c = col0 + (hl % LANES) + LANES * (j0 + hl / LANES);
            if rr < p.m && c < p.n {
                store(rr, c, total);
            }
        }
    }
    workgroupBarrier();
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let tile = wg.x + wg.z * groups.x;
    let col0 = tile * select(TILE, TILE / 2u, GATED);
    if col0 >= p.n {
        return; // the last z layer's spare workgroups (uniform: the whole workgroup leaves)
    }
    let row0 = wg.y * ROWS;
    let normalise = has(FLAG_LN);
    if normalise {
        layernorm_prologue(row0, tid);
    }
    let write_ln = has(FLAG_WRITE_LN) && tile == 0u;
    let transposed = has(FLAG_B_T);
    let rows = min(ROWS, p.m - row0);
    let lane = select(tid % LANES, tid / SLICES, transposed);
    let slice = select(tid / LANES, tid % SLICES, transposed);
    // Columns past N read column N−1 (a valid address) and are never written.
    let cols = vec4<u32>(w_col(col0, lane, 0u), w_col(col0, lane, 1u), w_col(col0, lane, 2u), w_col(col0, lane, 3u));
    // Stride between the words of one column at k and k + 1, and between columns.
    let k_step = select(w_stride(), 1u, transposed);
    let col_step = select(1u, p.k, transposed);
    let at0 = cols * col_step;
    for (var k0 = 0u; k0 < p.k; k0 += CHUNK_K) {
        let len = min(CHUNK_K, p.k - k0);
        // Stage 4 rows × 256 k of x (0 past M and K).
        for (var at = tid; at < ROWS * CHUNK_K; at += THREADS) {
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
        var kk = slice;
        // Four k a step: the 16 loads first, then the multiply-adds.
        for (; kk + 3u * SLICES < len; kk += 4u * SLICES) {
            let a = at0 + vec4<u32>((k0 + kk) * k_step);
            let b = a + vec4<u32>(SLICES * k_step);
            let c = b + vec4<u32>(SLICES * k_step);
            let d = c + vec4<u32>(SLICES * k_step);
            let wa = vec4<f32>(w_at(a.x), w_at(a.y), w_at(a.z), w_at(a.w));
            let wb = vec4<f32>(w_at(b.x), w_at(b.y), w_at(b.z), w_at(b.w));
            let wc = vec4<f32>(w_at(c.x), w_at(c.y), w_at(c.z), w_at(c.w));
            let wd = vec4<f32>(w_at(d.x), w_at(d.y), w_at(d.z), w_at(d.w));
            accumulate(kk, wa, rows);
            accumulate(kk + SLICES, wb, rows);
            accumulate(kk + 2u * SLICES, wc, rows);
            accumulate(kk + 3u * SLICES, wd, rows);
        }
        for (; kk < len; kk += SLICES) {
            let a = at0 + vec4<u32>((k0 + kk) * k_step);
            accumulate(kk, vec4<f32>(w_at(a.x), w_at(a.y), w_at(a.z), w_at(a.w)), rows);
        }
        workgroupBarrier();
    }
    reduce_and_store(row0, col0, tid, lane, slice, 0u);
    reduce_and_store(row0, col0, tid, lane, slice, 2u);
}

// matmul_bias.wgsl: y = act(ln?(x) · w + b) (+ res), tiled through workgroup memory.
//
// The one matmul of the forward pass; the flags (uniform, so every branch is
// uniform) fuse what surrounds a GPT-2 linear layer into the same dispatch:
//   FLAG_LN        layernorm each row of x as it is loaded (gain = ln[0..K],
//                  bias = ln[K..2K]); row statistics are computed in a prologue
//                  (two passes: mean, then biased variance, as GPT-2)
//   FLAG_RMS       with FLAG_LN: RMSNorm instead (the Llama family): no mean
//                  is subtracted, x / sqrt(mean(x²) + eps) · gain (+ bias, zeros)
//   FLAG_WRITE_LN  workgroups of column block 0 also write the normalised rows
//                  to ln_out[rows×K] (the trace's ln_1 / ln_2 / ln_f)
//   FLAG_B_T       w is [N×K] and used transposed (the tied LM head, wte)
//   FLAG_BIAS      add b[N]
//   act            0 none, 1 GELU tanh (gelu_new), 2 GELU erf, 3 ReLU, 4 SiLU
//   FLAG_RESIDUAL  y = res + (x·w + b): the residual connection
//   FLAG_WRITE_PRE also write x·w + b (before the residual) to pre[rows×N]
//   FLAG_VEC4      K (and N unless FLAG_B_T) are multiples of 4: tiles are
//                  loaded as vec4 (one 16-byte load per invocation per tile)
//   FLAG_W16       (the 16-bit pipeline) w holds 16-bit values, FLAG_W_BF16
//                  bfloat16 else IEEE half: matmul_weights_16.wgsl reads them
//
// Shapes (row-major f32; x and w are bound as array<vec4<f32>>, or w as packed
// 16-bit pairs, so their buffers are padded to a multiple of 16 bytes, which
// Kernels::dispatch checks; w is read through w_at/w_vec4 of
// matmul_weights_f32.wgsl or matmul_weights_16.wgsl):
//   x[·×K]: rows xrow0 .. xrow0+M are used (so a run can compute only new rows)
//   w[K×N] (GPT-2 Conv1D layout [in, out]) or [N×K] with FLAG_B_T; b[N]; ln[2K]
//   y: row yrow0 + r, column ycol0 + c at y[(yrow0 + r)·ldy + ycol0 + c]
//      (ycol0/ldy let a vocabulary split into chunks write one logits matrix)
//   res, pre: [·×N] at row yrow0 + r; ln_out: [·×K] at row xrow0 + r.
// Tiling: each workgroup computes a 64×64 block of y; each of its 16×16
// invocations a 4×4 sub-block held in registers. K is walked in steps of 16:
// the workgroup stages x[64×16] and w[16×64] in workgroup memory (4 KiB each),
// so each loaded value is reused 64 times. Out-of-range rows, columns and k are
// loaded as 0 and never written: correct for any M, N, K ≥ 1.
// Gated (GATED, see matmul_common.wgsl): a workgroup computes 64 rows × 32
// columns of y; its w tile holds their 32 gate columns then their 32 up
// columns (two contiguous runs of w per k), and invocation lx owns gate tile
// columns 2·lx, 2·lx+1 and their up columns 32+2·lx, 33+2·lx, so the
// epilogue has both. The same loads, multiply-adds and tile size per
// workgroup as the plain kernel.
// Workgroup 16×16; dispatch (ceil(N/64), ceil(M/64), 1), gated (ceil(N/32), ceil(M/64), 1).
// The uniform block, flags, shared bindings and the epilogue are in
// matmul_common.wgsl, prepended by gpu::kernels.
// CPU reference: engine::ops::matmul_bias, layernorm, activate, lm_head, add.

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;

var<workgroup> x_tile: array<f32, 1024>; // [64 rows × 16 k]
var<workgroup> w_tile: array<f32, 1024>; // [16 k × 64 cols]
var<workgroup> partial: array<f32, 256>;
var<workgroup> row_mean: array<f32, 64>;
var<workgroup> row_rstd: array<f32, 64>;

fn x_at(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

// The column of y that tile column tc (0..64) belongs to, for a workgroup
// whose columns start at col0: col0 + tc, or, gated, col0 + tc % 32.
fn tile_y_col(col0: u32, tc: u32) -> u32 {
    if GATED {
        return col0 + tc % 32u;
    }
    return col0 + tc;
}

// The column of w that tile column tc reads: gated, the gate column of
// y column col0 + tc for tc < 32, the up column (N further) of col0 + tc − 32 after.
fn tile_w_col(col0: u32, tc: u32) -> u32 {
    if GATED {
        return col0 + tc % 32u + (tc / 32u) * p.n;
    }
    return col0 + tc;
}

// The tile column of invocation lx's accumulator j (< 4): 4·lx + j, or,
// gated, 2·lx + j for j < 2 (gate) and 32 + 2·lx + j − 2 (their up columns).
fn owned_col(lx: u32, j: u32) -> u32 {
    if GATED {
        return 2u * lx + (j & 1u) + 32u * (j >> 1u);
    }
    return 4u * lx + j;
}


// x[row, k] normalised when FLAG_LN (r: the row within the tile).
fn x_value(r: u32, xk: u32, v: f32) -> f32 {
    return (v - row_mean[r]) * row_rstd[r] * ln[xk] + ln[p.k + xk];
}

// Sums `partial` over the 4 invocations of each row (tid = row·4 + part).
fn row_sum(tid: u32, value: f32) -> f32 {
    partial[tid] = value;
    workgroupBarrier();
    let base = (tid / 4u) * 4u;
    let total = partial[base] + partial[base + 1u] + partial[base + 2u] + partial[base + 3u];
    workgroupBarrier();
    return total;
}

// Mean and 1/sqrt(var + eps) of the workgroup's 64 rows of x, 4 invocations a row.
fn layernorm_prologue(row0: u32, tid: u32) {
    let r = tid / 4u;
    let part = tid % 4u;
    let row = row0 + r;
    let valid = row < p.m;
    let base = (p.xrow0 + row) * p.k;
    var s = 0.0;
    if valid {
        for (var c = part; c < p.k; c += 4u) {
            s += x_at(base + c);
        }
    }
    var mean = row_sum(tid, s) / f32(p.k);
    if has(FLAG_RMS) {
        mean = 0.0;
    }
    var sq = 0.0;
    if valid {
        for (var c = part; c < p.k; c += 4u) {
            let dev = x_at(base + c) - mean;
            sq += dev * dev;
        }
    }
    let variance = row_sum(tid, sq) / f32(p.k);
    if part == 0u {
        row_mean[r] = mean;
        row_rstd[r] = 1.0 / sqrt(variance + p.eps);
    }
    workgroupBarrier();
}

// Stages x[64 rows × 16 k] and w[16 k × 64 cols] (0 out of range), one scalar
// at a time: any K and N.
fn load_tiles(row0: u32, col0: u32, k0: u32, tid: u32, normalise: bool, write_ln: bool, transposed: bool) {
    for (var s = 0u; s < 4u; s++) {
        let at = tid + s * 256u;
        // x tile: row at / 16, k at % 16.
        let xr = at / TILE_K;
        let xk = k0 + at % TILE_K;
        var xv = 0.0;
        if row0 + xr < p.m && xk < p.k {
            let src = (p.xrow0 + row0 + xr) * p.k + xk;
            xv = x_at(src);
            if normalise {
                xv = x_value(xr, xk, xv);
                if write_ln {
                    ln_out[src] = xv;
                }
            }
        }
        x_tile[at] = xv;
        if transposed {
            // w[N×K]: walk k fastest so neighbouring invocations read neighbouring words.
            let tc = at / TILE_K;
            let wk = k0 + at % TILE_K;
            var wv = 0.0;
            if wk < p.k && tile_y_col(col0, tc) < p.n {
                wv = w_at(tile_w_col(col0, tc) * p.k + wk);
            }
            w_tile[(at % TILE_K) * TILE + at / TILE_K] = wv;
        } else {
            let wk = k0 + at / TILE;
            let tc = at % TILE;
            var wv = 0.0;
            if wk < p.k && tile_y_col(col0, tc) < p.n {
                wv = w_at(wk * w_stride() + tile_w_col(col0, tc));
            }
            w_tile[at] = wv;
        }
    }
}

// The same tiles as load_tiles, one vec4 per invocation per tile: K % 4 == 0
// (and N % 4 == 0 unless transposed), so a vec4 is wholly in or out of range.
fn load_tiles_vec4(row0: u32, col0: u32, k0: u32, tid: u32, normalise: bool, write_ln: bool, transposed: bool) {
    // x tile: row tid / 4, k k0 + 4·(tid % 4) .. +4.
    let xr = tid / 4u;
    let xk = k0 + (tid % 4u) * 4u;
    var xv = vec4<f32>(0.0);
    if row0 + xr < p.m && xk < p.k {
        let src = (p.xrow0 + row0 + xr) * p.k + xk;
        xv = x[src >> 2u];
        if normalise {
            xv = vec4<f32>(x_value(xr, xk, xv.x), x_value(xr, xk + 1u, xv.y), x_value(xr, xk + 2u, xv.z),
                x_value(xr, xk + 3u, xv.w));
            if write_ln {
                ln_out[src] = xv.x;
                ln_out[src + 1u] = xv.y;
                ln_out[src + 2u] = xv.z;
                ln_out[src + 3u] = xv.w;
            }
        }
    }
    let xt = xr * TILE_K + (tid % 4u) * 4u;
    x_tile[xt] = xv.x;
    x_tile[xt + 1u] = xv.y;
    x_tile[xt + 2u] = xv.z;
    x_tile[xt + 3u] = xv.w;
    if transposed {
        // w[N×K]: column tid / 4, k k0 + 4·(tid % 4) .. +4.
        let wc = tid / 4u;
        let wk = (tid % 4u) * 4u;
        var wv = vec4<f32>(0.0);
        if k0 + wk < p.k && tile_y_col(col0, wc) < p.n {
            wv = w_vec4((tile_w_col(col0, wc) * p.k + k0 + wk) >> 2u);
        }
        w_tile[wk * TILE + wc] = wv.x;
        w_tile[(wk + 1u) * TILE + wc] = wv.y;
        w_tile[(wk + 2u) * TILE + wc] = wv.z;
        w_tile[(wk + 3u) * TILE + wc] = wv.w;
    } else {
        // w[K×N]: k k0 + tid / 16, columns col0 + 4·(tid % 16) .. +4.
        let wk = tid / 16u;
        let wc = (tid % 16u) * 4u;
        var wv = vec4<f32>(0.0);
        // Gated: 4 neighbouring tile columns stay within the gate or the up run
        // (32 columns each), so a vec4 is still 4 neighbouring words of w.
        if k0 + wk < p.k && tile_y_col(col0, wc) < p.n {
            wv = w_vec4(((k0 + wk) * w_stride() + tile_w_col(col0, wc)) >> 2u);
        }
        let wt = wk * TILE + wc;
        w_tile[wt] = wv.x;
        w_tile[wt + 1u] = wv.y;
        w_tile[wt + 2u] = wv.z;
        w_tile[wt + 3u] = wv.w;
    }
}

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * select(TILE, TILE / 2u, GATED);
    let tid = lid.y * 16u + lid.x;
    let normalise = has(FLAG_LN);
    if normalise {
        layernorm_prologue(row0, tid);
    }
    let write_ln = has(FLAG_WRITE_LN) && wg.x == 0u;
    let transposed = has(FLAG_B_T);
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    let vec4_loads = has(FLAG_VEC4);
    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        if vec4_loads {
            load_tiles_vec4(row0, col0, k0, tid, normalise, write_ln, transposed);
        } else {
            load_tiles(row0, col0, k0, tid, normalise, write_ln, transposed);
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var xs: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                xs[i] = x_tile[(lid.y * 4u + i) * TILE_K + kk];
            }
            for (var j = 0u; j < 4u; j++) {
                let wv = w_tile[kk * TILE + owned_col(lid.x, j)];
                for (var i = 0u; i < 4u; i++) {
                    acc[i * 4u + j] += xs[i] * wv;
                }
            }
        }
        workgroupBarrier();
    }
    if GATED {
        for (var i = 0u; i < 4u; i++) {
            let r = row0 + lid.y * 4u + i;
            for (var j = 0u; j < 2u; j++) {
                let c = col0 + lid.x * 2u + j;
                if r < p.m && c < p.n {
                    store_gated(r, c, acc[i * 4u + j], acc[i * 4u + 2u + j]);
                }
            }
        }
        return;
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x * 4u + j;
            if r < p.m && c < p.n {
                store(r, c, acc[i * 4u + j]);
            }
        }
    }
}

// matmul_bias.wgsl: y = x · w + b, tiled through workgroup memory.
//
// Shapes (row-major f32):
//   x[M×K], w[K×N] (GPT-2 Conv1D layout [in, out]), b[N], y[M×N] out.
// Tiling: each workgroup computes a 64×64 block of y; each of its 16×16
// invocations computes a 4×4 sub-block held in registers. K is walked in
// steps of 16: the workgroup stages x[64×16] and w[16×64] in workgroup memory
// (4 KiB each), so each loaded value is reused 64 times. Out-of-range rows,
// columns and k are loaded as 0 and never written: correct for any M, N, K ≥ 1.
// Workgroup 16×16; dispatch (ceil(N/64), ceil(M/64), 1).
// CPU reference: engine::ops::matmul_bias (same k order; the bias is added last here).

struct Params {
    m: u32,
    k: u32,
    n: u32,
    _pad: u32,
}

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> x_tile: array<f32, 1024>; // [64 rows × 16 k]
var<workgroup> w_tile: array<f32, 1024>; // [16 k × 64 cols]

@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tid = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }
    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        for (var s = 0u; s < 4u; s++) {
            let at = tid + s * 256u;
            // x tile: row at / 16, k at % 16.
            let xr = row0 + at / TILE_K;
            let xk = k0 + at % TILE_K;
            var xv = 0.0;
            if xr < p.m && xk < p.k {
                xv = x[xr * p.k + xk];
            }
            x_tile[at] = xv;
            // w tile: k at / 64, column at % 64.
            let wk = k0 + at / TILE;
            let wc = col0 + at % TILE;
            var wv = 0.0;
            if wk < p.k && wc < p.n {
                wv = w[wk * p.n + wc];
            }
            w_tile[at] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var xs: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                xs[i] = x_tile[(lid.y * 4u + i) * TILE_K + kk];
            }
            for (var j = 0u; j < 4u; j++) {
                let wv = w_tile[kk * TILE + lid.x * 4u + j];
                for (var i = 0u; i < 4u; i++) {
                    acc[i * 4u + j] += xs[i] * wv;
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x * 4u + j;
            if r < p.m && c < p.n {
                y[r * p.n + c] = acc[i * 4u + j] + b[c];
            }
        }
    }
}

// value_range.wgsl: the smallest and largest value of one matrix of a run
// (a head's T×T scores, its T×d_head Q, K, V or output), skipping masked
// cells, so heatmap.wgsl can fit its colour map without a readback (and the
// legend reads back just these 8 bytes).
//
// Buffers (row-major f32):
//   values  cell (row i, col j) at offset + i·row_stride + j, for i < rows, j < cols
//   masked  the same layout; a cell whose bits are 0xff800000 (−∞) is skipped
//           when use_mask = 1 (the causal mask's future tokens)
//   out     [min, max] (both 0 when every cell is masked)
// One workgroup of 256 invocations strides over the cells, then a tree
// reduction in workgroup memory. Dispatch (1, 1, 1).
// CPU reference: the min and max of the trace's matrix.

struct Params {
    rows: u32,
    cols: u32,
    offset: u32,
    row_stride: u32,
    use_mask: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NEG_INF_BITS: u32 = 0xff800000u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> masked: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

var<workgroup> lows: array<f32, 256>;
var<workgroup> highs: array<f32, 256>;
var<workgroup> seen: array<u32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) tid: u32) {
    var lo = 0.0;
    var hi = 0.0;
    var any = 0u;
    let cells = p.rows * p.cols;
    for (var c = tid; c < cells; c += 256u) {
        let at = p.offset + (c / p.cols) * p.row_stride + c % p.cols;
        if p.use_mask == 1u && bitcast<u32>(masked[at]) == NEG_INF_BITS {
            continue;
        }
        let v = values[at];
        if any == 0u {
            lo = v;
            hi = v;
            any = 1u;
        } else {
            lo = min(lo, v);
            hi = max(hi, v);
        }
    }
    lows[tid] = lo;
    highs[tid] = hi;
    seen[tid] = any;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if tid < stride && seen[tid + stride] == 1u {
            if seen[tid] == 1u {
                lows[tid] = min(lows[tid], lows[tid + stride]);
                highs[tid] = max(highs[tid], highs[tid + stride]);
            } else {
                lows[tid] = lows[tid + stride];
                highs[tid] = highs[tid + stride];
                seen[tid] = 1u;
            }
        }
        workgroupBarrier();
    }
    if tid == 0u {
        out[0] = lows[0];
        out[1] = highs[0];
    }
}

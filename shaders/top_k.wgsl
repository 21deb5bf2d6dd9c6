// top_k.wgsl: the k most likely next tokens of one logits row, and the softmax
// normaliser at a temperature, so the page reads back 8 + 8k bytes instead of
// the whole vocabulary (and a temperature change re-runs only this kernel).
//
// Input:  logits[·×V] (row-major f32); row `row` is used.
// Output: out[0] = max logit; out[1] = Σ_v exp((logit_v − max) / temperature)
//         (1 when temperature ≤ 0: greedy); then for rank i < k (largest
//         first; equal logits: lower id first, as engine::sampling::candidates):
//         out[2 + 2i] = id, out[3 + 2i] = logit. out is array<u32> (f32s as
//         their bits), read back as f32 words.
//         Ranks past V get id 0xFFFFFFFF and logit −inf.
// Method: k rounds of selection. In each, every invocation scans its strided
// share of the row for the best (logit, id) ranked after the previous pick,
// then a tree reduction in workgroup memory picks the round's winner. k·V
// reads in all: tiny next to the LM head that produced the row.
// Workgroup 256; dispatch (1, 1, 1).
// CPU reference: engine::sampling::probabilities and candidates.

struct Params {
    v: u32,
    row: u32,
    k: u32,
    temperature: f32,
    // f32::NEG_INFINITY's bits: WGSL has no −inf constant (Tint rejects one).
    neg_inf_bits: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NONE: u32 = 0xFFFFFFFFu;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>; // f32 values as their bits

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_id: array<u32, 256>;
var<workgroup> sums: array<f32, 256>;

// Whether (av, aid) ranks before (bv, bid). No id ranks before NONE.
fn before(av: f32, aid: u32, bv: f32, bid: u32) -> bool {
    if bid == NONE {
        return aid != NONE;
    }
    if aid == NONE {
        return false;
    }
    return av > bv || (av == bv && aid < bid);
}

@compute @workgroup_size(256)
fn main(@builtin(local_invocation_index) tid: u32) {
    let base = p.row * p.v;
    var prev_v = 0.0;
    var prev_id = NONE;
    for (var rank = 0u; rank < p.k; rank++) {
        var v = 0.0;
        var id = NONE;
        for (var i = tid; i < p.v; i += 256u) {
            let value = logits[base + i];
            let after_prev = rank == 0u || before(prev_v, prev_id, value, i);
            if after_prev && before(value, i, v, id) {
                v = value;
                id = i;
            }
        }
        best_v[tid] = v;
        best_id[tid] = id;
        workgroupBarrier();
        for (var stride = 128u; stride > 0u; stride >>= 1u) {
            if tid < stride {
                let ov = best_v[tid + stride];
                let oid = best_id[tid + stride];
                if before(ov, oid, best_v[tid], best_id[tid]) {
                    best_v[tid] = ov;
                    best_id[tid] = oid;
                }
            }
            workgroupBarrier();
        }
        // Uniform loads: every invocation sees the winner, and the loop's exit is uniform.
        prev_v = workgroupUniformLoad(&best_v[0]);
        prev_id = workgroupUniformLoad(&best_id[0]);
        if tid == 0u {
            out[2u + 2u * rank] = prev_id;
            out[3u + 2u * rank] = select(bitcast<u32>(prev_v), p.neg_inf_bits, prev_id == NONE);
        }
        if prev_id == NONE {
            // Every id is ranked; the remaining ranks stay empty.
            if tid == 0u {
                for (var r = rank + 1u; r < p.k; r++) {
                    out[2u + 2u * r] = NONE;
                    out[3u + 2u * r] = p.neg_inf_bits;
                }
            }
            break;
        }
    }

    // The max and the normaliser, each a strided scan and a tree reduction.
    workgroupBarrier();
    var max_v = bitcast<f32>(p.neg_inf_bits);
    for (var i = tid; i < p.v; i += 256u) {
        max_v = max(max_v, logits[base + i]);
    }
    best_v[tid] = max_v;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if tid < stride {
            best_v[tid] = max(best_v[tid], best_v[tid + stride]);
        }
        workgroupBarrier();
    }
    let top = best_v[0];
    var s = 0.0;
    if p.temperature > 0.0 {
        for (var i = tid; i < p.v; i += 256u) {
            s += exp((logits[base + i] - top) / p.temperature);
        }
    }
    sums[tid] = s;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if tid < stride {
            sums[tid] += sums[tid + stride];
        }
        workgroupBarrier();
    }
    if tid == 0u {
        out[0] = bitcast<u32>(top);
        out[1] = bitcast<u32>(select(1.0, sums[0], p.temperature > 0.0));
    }
}

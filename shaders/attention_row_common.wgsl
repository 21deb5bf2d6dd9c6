// attention_row_common.wgsl: what the two kernels that give one query row of
// one head a whole workgroup share (attention_rows.wgsl, flash_rows.wgsl),
// prepended to each after attention_common.wgsl by gpu::kernels: the staged
// query row, one row's scores (up to 1024 keys at a time), and the
// workgroup-wide max and sum. Workgroup WG (64) invocations.

var<workgroup> q_s: array<f32, 256>;
// The keys row_s holds (attention_rows.wgsl works a longer row in global memory).
const ROW_S_KEYS: u32 = 1024u;
var<workgroup> row_s: array<f32, ROW_S_KEYS>;
var<workgroup> red: array<f32, 64>;

// Stages query row i of head h into q_s (d_head ≤ 256) for the whole
// workgroup (every invocation must call it).
fn stage_q(lid: u32, i: u32, h: u32) {
    for (var c = lid; c < p.d_head; c += WG) {
        q_s[c] = qkv[i * qkv_stride() + q_col(h) + c];
    }
    workgroupBarrier();
}

// The staged query row (q_s) · key j of head h (its KV head's K).
fn q_dot_k(j: u32, h: u32) -> f32 {
    let k_base = j * qkv_stride() + k_col(h);
    var s = 0.0;
    for (var c = 0u; c < p.d_head; c++) {
        s += q_s[c] * qkv[k_base + c];
    }
    return s;
}

// The max (take_max) or the sum of `value` over the workgroup (every
// invocation must call it, with the same take_max).
fn reduce(lid: u32, value: f32, take_max: bool) -> f32 {
    red[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if lid < stride {
            let a = red[lid];
            let b = red[lid + stride];
            red[lid] = select(a + b, max(a, b), take_max);
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

fn reduce_max(lid: u32, value: f32) -> f32 {
    return reduce(lid, value, true);
}

fn reduce_sum(lid: u32, value: f32) -> f32 {
    return reduce(lid, value, false);
}

// head_scores.wgsl: the head finder's template scores of every head of one
// layer, from the attention weights a traced run left on the GPU, so the page
// reads back two numbers per head and template instead of H·T² weights.
//
// Buffers (row-major f32 unless said):
//   weights  [H × cap × cap]: head h's weight of query i on key j at
//            h·cap² + i·cap + j, for i, j < t (attention_rows.wgsl's output)
//   masked   the same layout: the masked scores, −∞ (bits 0xff800000) where
//            query i may not see key j
//   ids      [t] u32: the run's token ids
//   pattern  [n × n]: a painted pattern (values ≥ 0; template 6 only)
//   out      for workgroup (h, y, z): out[2·(((z·templates + y)·n_layer + layer)·n_head + h)]
//            = the template's sum over rows 64·z .. 64·z + 64 on which it is
//            defined, and the next word the number of those rows; the caller
//            adds the blocks up (gpu::head_finder, in f64) and divides
// Templates (y + first_template), each a mean over query rows i < t:
//   0 previous token: rows i ≥ 1, w(i, i − 1)
//   1 first token:    rows i ≥ 1, w(i, 0)
//   2 self:           rows i ≥ 1, w(i, i)
//   3 induction:      rows whose token occurs at some j < i, Σ over those j of w(i, j + 1)
//   4 entropy:        rows with ≥ 2 visible keys, −Σ p·ln p / ln(visible keys)
//   5 to token X:     rows that see a copy of X at j ≤ i, Σ over every copy j of w(i, j)
//   6 painted:        rows whose painted cells over visible keys sum to s > 0,
//                     Σ over visible j of min(w(i, j), P(i, j) / s), where
//                     P(i, j) = pattern[cell(i)·n + cell(j)], cell(x) = min(x·n / t, n − 1)
// One workgroup of 64 invocations per (head, template, block of 64 rows): a
// row per invocation, then a tree reduction in f32. Dispatch (n_head,
// templates, ceil(t / 64)). An invocation's loops walk one row's keys (at most
// 2·t iterations): within llvmpipe's 65,535 loop iterations per invocation
// (gpu::GpuContext::loop_limit) up to 32,767 tokens, where one workgroup per
// head striding over every row passed it from about 2,000 (t²/64 per invocation).
// CPU twin: engine::head_finder::template_scores (0–5) and painted_scores (6),
// which sum in f64: the means agree within 1e-4 (tests/gpu_head_finder.rs).

struct Params {
    t: u32,
    cap: u32,
    n_head: u32,
    n_layer: u32,
    layer: u32,
    first_template: u32,
    token: u32,
    pattern_n: u32,
    // Templates in `out` (its second index), dispatched or not.
    templates: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const NEG_INF_BITS: u32 = 0xff800000u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> weights: array<f32>;
@group(0) @binding(2) var<storage, read> masked: array<f32>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read> pattern: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

var<workgroup> sums: array<f32, 64>;
var<workgroup> rows: array<f32, 64>;

fn w(base: u32, i: u32, j: u32) -> f32 {
    return weights[base + i * p.cap + j];
}

fn visible(base: u32, i: u32, j: u32) -> bool {
    return bitcast<u32>(masked[base + i * p.cap + j]) != NEG_INF_BITS;
}

fn painted(i: u32, j: u32) -> f32 {
    let n = p.pattern_n;
    let ci = min(i * n / p.t, n - 1u);
    let cj = min(j * n / p.t, n - 1u);
    return pattern[ci * n + cj];
}

// Row i's value and whether the template is defined on it (1.0 or 0.0).
fn row_score(kind: u32, base: u32, i: u32) -> vec2<f32> {
    switch kind {
        case 0u: {
            if i == 0u { return vec2(0.0, 0.0); }
            return vec2(w(base, i, i - 1u), 1.0);
        }
        case 1u: {
            if i == 0u { return vec2(0.0, 0.0); }
            return vec2(w(base, i, 0u), 1.0);
        }
        case 2u: {
            if i == 0u { return vec2(0.0, 0.0); }
            return vec2(w(base, i, i), 1.0);
        }
        case 3u: {
            var s = 0.0;
            var copies = 0u;
            for (var j = 0u; j < i; j++) {
                if ids[j] == ids[i] {
                    s += w(base, i, j + 1u);
                    copies++;
                }
            }
            return vec2(s, select(0.0, 1.0, copies > 0u));
        }
        case 4u: {
            var e = 0.0;
            var seen = 0u;
            for (var j = 0u; j < p.t; j++) {
                if visible(base, i, j) {
                    seen++;
                }
                let a = w(base, i, j);
                if a > 0.0 {
                    e -= a * log(a);
                }
            }
            if seen < 2u { return vec2(0.0, 0.0); }
            return vec2(e / log(f32(seen)), 1.0);
        }
        case 5u: {
            var s = 0.0;
            var sees = 0u;
            for (var j = 0u; j < p.t; j++) {
                if ids[j] == p.token {
                    s += w(base, i, j);
                    if j <= i && visible(base, i, j) {
                        sees = 1u;
                    }
                }
            }
            return vec2(s, f32(sees));
        }
        default: {
            var total = 0.0;
            for (var j = 0u; j < p.t; j++) {
                if visible(base, i, j) {
                    total += painted(i, j);
                }
            }
            if total <= 0.0 { return vec2(0.0, 0.0); }
            var s = 0.0;
            for (var j = 0u; j < p.t; j++) {
                if visible(base, i, j) {
                    s += min(w(base, i, j), painted(i, j) / total);
                }
            }
            return vec2(s, 1.0);
        }
    }
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let h = wg.x;
    let kind = wg.y + p.first_template;
    let base = h * p.cap * p.cap;
    let i = wg.z * 64u + tid;
    var s = 0.0;
    var n = 0.0;
    if i < p.t {
        // Only the rows the template is defined on count (to token X's sum
        // is not 0 on a row that does not see X under a bidirectional mask).
        let r = row_score(kind, base, i);
        if r.y > 0.0 {
            s = r.x;
            n = 1.0;
        }
    }
    sums[tid] = s;
    rows[tid] = n;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride >>= 1u) {
        if tid < stride {
            sums[tid] += sums[tid + stride];
            rows[tid] += rows[tid + stride];
        }
        workgroupBarrier();
    }
    if tid == 0u {
        let at = 2u * (((wg.z * p.templates + wg.y) * p.n_layer + p.layer) * p.n_head + h);
        out[at] = sums[0];
        out[at + 1u] = rows[0];
    }
}

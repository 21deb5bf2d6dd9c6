// heatmap.wgsl: draws one matrix of a run straight from the storage buffer the
// compute kernels wrote: a head's T×T scores or weights, or its T×d_head Q, K,
// V or output columns.
//
// Buffers (row-major f32, read-only in the fragment stage):
//   values   cell (row i, col j) at offset + i·row_stride + j, times `scale`
//            (1/√d_head draws the scaled scores from the raw ones).
//   masked   the same layout as values: where its bits are 0xff800000 (−∞) the
//            cell is drawn as masked (grey hatching), not as a colour; only
//            read when use_mask = 1.
//   range    [lo, hi] of the colour map when range_from_buffer = 1 (written by
//            shaders/value_range.wgsl, so no value leaves the GPU to pick it);
//            otherwise u.lo, u.hi.
// Colour maps, both colour-blind safe: 0 viridis (sequential: weights), values
// clamped to [lo, hi]; 1 PuOr-like diverging (signed scores), centred on 0 and
// symmetric to max(|lo|, |hi|).
// Vertex stage: one full-screen triangle, no vertex buffer (draw 3 vertices);
// the render pass viewport places the map.
// Fragment stage: the pixel's cell from its position in the viewport
// (u.x0, u.y0, u.width, u.height, in pixels). The hovered row and column (if
// any) are lightened; with u.outline = 1 a 3-pixel frame marks the selected
// map (the model view's chosen layer and head).

struct Uniforms {
    rows: u32,
    cols: u32,
    offset: u32,
    row_stride: u32,
    x0: f32,
    y0: f32,
    width: f32,
    height: f32,
    scale: f32,
    colormap: u32,
    lo: f32,
    hi: f32,
    srgb_target: u32,
    use_mask: u32,
    range_from_buffer: u32,
    hover_row: i32,
    hover_col: i32,
    outline: u32,
    _pad1: u32,
    _pad2: u32,
}

const NEG_INF_BITS: u32 = 0xff800000u;

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> masked: array<f32>;
@group(0) @binding(3) var<storage, read> range: array<f32>;

@vertex
fn vs_main(@builtin(vertex_index) vi: u32) -> @builtin(position) vec4<f32> {
    let x = f32(i32(vi & 1u) * 4 - 1);
    let y = f32(i32(vi >> 1u) * 4 - 1);
    return vec4<f32>(x, y, 0.0, 1.0);
}

// Polynomial fit of matplotlib's viridis (sRGB-encoded output).
fn viridis(t: f32) -> vec3<f32> {
    let c0 = vec3<f32>(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    let c1 = vec3<f32>(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    let c2 = vec3<f32>(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    let c3 = vec3<f32>(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    let c4 = vec3<f32>(6.228269936347081, 14.17993336680509, 56.69055260068105);
    let c5 = vec3<f32>(4.776384997670288, -13.74514537774601, -65.35303263337234);
    let c6 = vec3<f32>(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    return clamp(c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6))))), vec3<f32>(0.0), vec3<f32>(1.0));
}

// Diverging purple (−) → near-white (0) → orange (+), after ColorBrewer PuOr
// (colour-blind safe); s in [−1, 1].
fn diverging(s: f32) -> vec3<f32> {
    let mid = vec3<f32>(0.97, 0.97, 0.97);
    let neg = vec3<f32>(0.329, 0.153, 0.533); // #542788
    let neg_mid = vec3<f32>(0.698, 0.671, 0.824); // #b2abd2
    let pos = vec3<f32>(0.702, 0.345, 0.024); // #b35806
    let pos_mid = vec3<f32>(0.992, 0.722, 0.388); // #fdb863
    let a = clamp(abs(s), 0.0, 1.0);
    if s < 0.0 {
        return select(mix(neg_mid, neg, (a - 0.5) * 2.0), mix(mid, neg_mid, a * 2.0), a < 0.5);
    }
    return select(mix(pos_mid, pos, (a - 0.5) * 2.0), mix(mid, pos_mid, a * 2.0), a < 0.5);
}

fn to_target(srgb: vec3<f32>) -> vec4<f32> {
    if u.srgb_target == 1u {
        return vec4<f32>(pow(srgb, vec3<f32>(2.2)), 1.0);
    }
    return vec4<f32>(srgb, 1.0);
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let background = vec3<f32>(0.12, 0.13, 0.15);
    if u.rows == 0u || u.cols == 0u {
        return to_target(background);
    }
    let px = pos.x - u.x0;
    let py = pos.y - u.y0;
    if u.outline == 1u && (px < 3.0 || py < 3.0 || px > u.width - 3.0 || py > u.height - 3.0) {
        return to_target(vec3<f32>(0.486, 0.769, 1.0));
    }
    let cell_w = u.width / f32(u.cols);
    let cell_h = u.height / f32(u.rows);
    let j = min(u32(max(px, 0.0) / cell_w), u.cols - 1u);
    let i = min(u32(max(py, 0.0) / cell_h), u.rows - 1u);
    // A 1-pixel gap between cells when they are large enough to afford it.
    let fx = px - f32(j) * cell_w;
    let fy = py - f32(i) * cell_h;
    if (cell_w >= 8.0 && fx < 1.0) || (cell_h >= 8.0 && fy < 1.0) {
        return to_target(background);
    }
    let at = u.offset + i * u.row_stride + j;
    var lo = u.lo;
    var hi = u.hi;
    if u.range_from_buffer == 1u {
        // value_range.wgsl ranges the unscaled values.
        lo = range[0] * u.scale;
        hi = range[1] * u.scale;
    }
    var colour: vec3<f32>;
    if u.use_mask == 1u && bitcast<u32>(masked[at]) == NEG_INF_BITS {
        let stripe = (u32(pos.x) + u32(pos.y)) % 8u;
        colour = select(vec3<f32>(0.22, 0.23, 0.26), vec3<f32>(0.32, 0.33, 0.36), stripe < 3u);
    } else {
        let v = values[at] * u.scale;
        if u.colormap == 1u {
            colour = diverging(v / max(max(abs(lo), abs(hi)), 1e-12));
        } else {
            colour = viridis(clamp((v - lo) / max(hi - lo, 1e-12), 0.0, 1.0));
        }
    }
    if u.hover_row >= 0 && (i32(i) == u.hover_row || i32(j) == u.hover_col) {
        colour = mix(colour, vec3<f32>(1.0), 0.18);
    }
    return to_target(colour);
}

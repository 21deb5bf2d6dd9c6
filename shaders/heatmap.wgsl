// heatmap.wgsl: draws one head's T×T matrix straight from the storage buffers.
//
// Buffers (row-major f32, read-only in the fragment stage):
//   values[H×S×S]  what is drawn (softmax weights), cell (row i, col j) of head h at
//                  offset + i·S + j (S = stride, the buffers' capacity ≥ T; offset = h·S·S),
//                  mapped through viridis (sequential, colour-blind safe)
//                  after clamping to [lo, hi]
//   masked[H×S×S]  the masked scores: a cell whose bits are 0xff800000 (−∞) is drawn
//                  as masked (grey hatching), not as a colour.
// Vertex stage: one full-screen triangle, no vertex buffer (draw 3 vertices).
// Fragment stage: the pixel's cell from its position and the viewport size in `u`.
// The hovered row and column (if any) get a light outline.

struct Uniforms {
    t: u32,
    offset: u32,
    width: f32,
    height: f32,
    lo: f32,
    hi: f32,
    srgb_target: u32,
    hover_row: i32,
    hover_col: i32,
    stride: u32,
    _pad1: u32,
    _pad2: u32,
}

const NEG_INF_BITS: u32 = 0xff800000u;

@group(0) @binding(0) var<uniform> u: Uniforms;
@group(0) @binding(1) var<storage, read> values: array<f32>;
@group(0) @binding(2) var<storage, read> masked: array<f32>;

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

fn to_target(srgb: vec3<f32>) -> vec4<f32> {
    if u.srgb_target == 1u {
        return vec4<f32>(pow(srgb, vec3<f32>(2.2)), 1.0);
    }
    return vec4<f32>(srgb, 1.0);
}

@fragment
fn fs_main(@builtin(position) pos: vec4<f32>) -> @location(0) vec4<f32> {
    let background = vec3<f32>(0.12, 0.13, 0.15);
    if u.t == 0u {
        return to_target(background);
    }
    let cell_w = u.width / f32(u.t);
    let cell_h = u.height / f32(u.t);
    let j = min(u32(pos.x / cell_w), u.t - 1u);
    let i = min(u32(pos.y / cell_h), u.t - 1u);
    // A 1-pixel gap between cells when they are large enough to afford it.
    let fx = pos.x - f32(j) * cell_w;
    let fy = pos.y - f32(i) * cell_h;
    if (cell_w >= 8.0 && fx < 1.0) || (cell_h >= 8.0 && fy < 1.0) {
        return to_target(background);
    }
    let at = u.offset + i * u.stride + j;
    var colour: vec3<f32>;
    if bitcast<u32>(masked[at]) == NEG_INF_BITS {
        let stripe = (u32(pos.x) + u32(pos.y)) % 8u;
        colour = select(vec3<f32>(0.22, 0.23, 0.26), vec3<f32>(0.32, 0.33, 0.36), stripe < 3u);
    } else {
        let v = clamp((values[at] - u.lo) / max(u.hi - u.lo, 1e-12), 0.0, 1.0);
        colour = viridis(v);
    }
    if u.hover_row >= 0 && (i32(i) == u.hover_row || i32(j) == u.hover_col) {
        colour = mix(colour, vec3<f32>(1.0), 0.18);
    }
    return to_target(colour);
}

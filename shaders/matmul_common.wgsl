// matmul_common.wgsl: what matmul_bias.wgsl and matmul_skinny.wgsl share,
// prepended to each by gpu::kernels (WGSL has no include): the uniform block,
// the fusion flags, the bindings both declare alike (each kernel declares x at
// binding 1 and w at binding 2 itself, as vec4 or scalar arrays), and the
// epilogue: bias, activation, pre-residual write, residual add, store.
// Shapes and flags: see matmul_bias.wgsl's header.
//
// GATED (a `const` gpu::kernels puts in front of this file: false for the
// plain pipelines, so their code is unchanged, true for the gated ones):
// w holds gate columns then up columns, [K × 2N] ([2N × K] with FLAG_B_T),
// b is [2N], and y = act(x·w_gate + b_gate) · (x·w_up + b_up), [·×N]: the
// Llama family's SwiGLU (act = SiLU) in the gate|up projection's epilogue,
// with no [·×2N] intermediate. Each invocation owns matching gate and up
// columns (see each kernel's "Gated" paragraph); FLAG_RESIDUAL and
// FLAG_WRITE_PRE are ignored. CPU twin: engine::ops::matmul_bias then
// engine::ops::swiglu.

struct Params {
    m: u32,
    k: u32,
    n: u32,
    xrow0: u32,
    yrow0: u32,
    ldy: u32,
    ycol0: u32,
    flags: u32,
    act: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
}

const FLAG_LN: u32 = 1u;
const FLAG_WRITE_LN: u32 = 2u;
const FLAG_B_T: u32 = 4u;
const FLAG_BIAS: u32 = 8u;
const FLAG_RESIDUAL: u32 = 16u;
const FLAG_WRITE_PRE: u32 = 32u;
const FLAG_VEC4: u32 = 64u;
const FLAG_RMS: u32 = 128u;
const FLAG_W16: u32 = 256u;
const FLAG_W_BF16: u32 = 512u;
// Set with GATED (it selects the gated pipeline on the Rust side).
const FLAG_GATED: u32 = 1024u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> res: array<f32>;
@group(0) @binding(6) var<storage, read> ln: array<f32>;
@group(0) @binding(7) var<storage, read_write> ln_out: array<f32>;
@group(0) @binding(8) var<storage, read_write> pre: array<f32>;

fn has(flag: u32) -> bool {
    return (p.flags & flag) != 0u;
}

// The row stride of w (not transposed): N, or 2N when gated.
fn w_stride() -> u32 {
    if GATED {
        return 2u * p.n;
    }
    return p.n;
}

fn erf_approx(v: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| ≤ 1.5e-7.
    let s = sign(v);
    let a = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return s * (1.0 - poly * exp(-a * a));
}

fn activate(v: f32) -> f32 {
    switch p.act {
        case 1u: {
            // tanh saturates long before 15; clamping keeps exp-based tanh finite.
            let inner = clamp(0.7978846 * (v + 0.044715 * v * v * v), -15.0, 15.0);
            return 0.5 * v * (1.0 + tanh(inner));
        }
        case 2u: { return 0.5 * v * (1.0 + erf_approx(v * 0.70710678)); }
        case 3u: { return max(v, 0.0); }
        // SiLU; exp's argument clamped so a very negative v gives -0, not NaN.
        case 4u: { return v / (1.0 + exp(min(-v, 80.0))); }
        default: { return v; }
    }
}

// The epilogue for output row r (< M) and column c (< N) holding x·w in `acc`.
fn store(r: u32, c: u32, acc: f32) {
    var v = acc;
    if has(FLAG_BIAS) {
        v += b[c];
    }
    v = activate(v);
    let row = p.yrow0 + r;
    if has(FLAG_WRITE_PRE) {
        pre[row * p.n + c] = v;
    }
    if has(FLAG_RESIDUAL) {
        v = res[row * p.n + c] + v;
    }
    y[row * p.ldy + p.ycol0 + c] = v;
}

// The gated epilogue for output row r (< M) and column c (< N): `gate` and
// `up` hold x·w_gate and x·w_up of column c.
fn store_gated(r: u32, c: u32, gate: f32, up: f32) {
    var g = gate;
    var u = up;
    if has(FLAG_BIAS) {
        g += b[c];
        u += b[p.n + c];
    }
    y[(p.yrow0 + r) * p.ldy + p.ycol0 + c] = activate(g) * u;
}

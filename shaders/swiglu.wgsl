// swiglu.wgsl: the Llama family's MLP activation, silu(gate) · up, per element.
//
// Shapes (row-major f32):
//   gate_up[·×2m]   in: the fused gate|up projection, gate in columns [0, m), up in [m, 2m)
//   out[·×m]        out: silu(gate) · up for rows row0 .. row0+R
// silu(g) = g / (1 + e^(−g)), exp's argument clamped so a very negative g gives −0, not NaN.
// One invocation per output element. Workgroup 64; dispatch (ceil(R·m/64), 1, 1).
// CPU reference: engine::ops::swiglu.

struct Params {
    rows: u32,
    m: u32,
    row0: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gate_up: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    if gid.x >= p.rows * p.m {
        return;
    }
    let row = p.row0 + gid.x / p.m;
    let c = gid.x % p.m;
    let g = gate_up[row * 2u * p.m + c];
    let u = gate_up[row * 2u * p.m + p.m + c];
    out[row * p.m + c] = g / (1.0 + exp(min(-g, 80.0))) * u;
}

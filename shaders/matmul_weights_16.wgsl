// matmul_weights_16.wgsl: w kept 16-bit on the GPU, two values per u32
// (element i in the low half of word i/2 when i is even, the high half when
// odd), widened to f32 as it is read: bfloat16 with FLAG_W_BF16, IEEE half
// otherwise, decoded with integer operations (no shader-f16, subnormals
// exact). The buffer is padded to 16 bytes. Prepended by gpu::kernels after
// matmul_common.wgsl to matmul_bias.wgsl and matmul_skinny.wgsl for their
// 16-bit pipelines; the f32 twins are matmul_weights_f32*.wgsl.
// CPU twin: half::f16::to_f32, half::bf16::to_f32 (gpu::weights packs them).

@group(0) @binding(2) var<storage, read> w: array<u32>;

fn half_to_f32(h: u32) -> f32 {
    if has(FLAG_W_BF16) {
        return bitcast<f32>(h << 16u);
    }
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if e == 0u {
        // Zero or subnormal: m · 2^−24, exact in f32.
        let v = f32(m) * 5.9604645e-8;
        return bitcast<f32>(bitcast<u32>(v) | sign);
    }
    // Normal (weights are finite: no e = 31): rebias the exponent 15 → 127.
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

// Element i of w.
fn w_at(i: u32) -> f32 {
    let word = w[i >> 1u];
    return half_to_f32(select(word & 0xffffu, word >> 16u, (i & 1u) == 1u));
}

// Elements 4·i4 .. 4·i4 + 3 of w.
fn w_vec4(i4: u32) -> vec4<f32> {
    let a = w[2u * i4];
    let b = w[2u * i4 + 1u];
    return vec4<f32>(half_to_f32(a & 0xffffu), half_to_f32(a >> 16u), half_to_f32(b & 0xffffu), half_to_f32(b >> 16u));
}

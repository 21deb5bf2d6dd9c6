// half.wgsl: a 16-bit float (the low 16 bits of h) to f32, exactly: bfloat16
// when `bf16`, IEEE binary16 otherwise, with integer operations only (no
// shader-f16; subnormal halves exact). Prepended by gpu::kernels to the
// matmul pipelines (matmul_weights_16.wgsl uses it) and the 16-bit embed
// pipeline (embed_table_16.wgsl).
// CPU twin: half::f16::to_f32, half::bf16::to_f32 (gpu::pack_half packs).

fn half_to_f32(h: u32, bf16: bool) -> f32 {
    if bf16 {
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

// Element i of 16-bit values packed two per u32 (the even one in the low half).
fn half_in(word: u32, i: u32, bf16: bool) -> f32 {
    return half_to_f32(select(word & 0xffffu, word >> 16u, (i & 1u) == 1u), bf16);
}

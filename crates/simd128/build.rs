//! The app's relaxed-SIMD build (tools/build_relaxed_simd.sh) sets
//! `ATTNSCOPE_RELAXED_SIMD=1`; for wasm32 this turns on the cfg
//! `attnscope_relaxed_simd`, which enables the `relaxed-simd` target feature
//! on the crate's products alone and fuses their multiply-adds (`madd` in
//! src/wasm.rs). A cfg from here, unlike a cargo feature or RUSTFLAGS, leaves
//! the crates' metadata hashes alone: the dependencies compiled for the plain
//! build serve this one too, and wasm-bindgen writes the same glue for both.
use std::env;

fn main() {
    println!("cargo::rerun-if-env-changed=ATTNSCOPE_RELAXED_SIMD");
    println!("cargo::rustc-check-cfg=cfg(attnscope_relaxed_simd)");
    let wasm = env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32");
    match env::var("ATTNSCOPE_RELAXED_SIMD").as_deref() {
        Err(_) | Ok("" | "0") => {}
        Ok("1") if wasm => println!("cargo::rustc-cfg=attnscope_relaxed_simd"),
        Ok("1") => {} // native builds have no wasm SIMD to relax
        Ok(other) => {
            eprintln!("ATTNSCOPE_RELAXED_SIMD must be 1, 0 or unset, not {other:?}");
            std::process::exit(1);
        }
    }
}

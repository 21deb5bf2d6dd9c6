//! AFL++ target `loader` (see ../../targets.rs): `cargo afl fuzz -i fuzz/corpus/loader …` (fuzz/README.md).

include!("../../afl_main.rs");
afl_main!(loader);

//! AFL++ target `gguf` (see ../../targets.rs): `cargo afl fuzz -i fuzz/corpus/gguf …` (fuzz/README.md).

include!("../../afl_main.rs");
afl_main!(gguf);

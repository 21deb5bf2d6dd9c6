//! AFL++ target `escape` (see ../../targets.rs): `cargo afl fuzz -i fuzz/corpus/escape …` (fuzz/README.md).

include!("../../afl_main.rs");
afl_main!(escape_formats);

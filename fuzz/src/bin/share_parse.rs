//! AFL++ target `share_parse` (see ../../targets.rs): `cargo afl fuzz -i fuzz/corpus/share_parse …` (fuzz/README.md).

include!("../../afl_main.rs");
afl_main!(share_parse);

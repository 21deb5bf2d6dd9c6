//! AFL++ target `tokenizer` (see ../../targets.rs): `cargo afl fuzz -i fuzz/corpus/tokenizer …` (fuzz/README.md).

include!("../../afl_main.rs");
afl_main!(tokenizer);

//! AFL++ target `loader` (see ../../targets.rs): `cargo afl fuzz -i fuzz/corpus/loader …` (fuzz/README.md).

#[path = "../../alloc.rs"]
mod alloc;
#[path = "../../targets.rs"]
#[allow(dead_code)]
mod targets;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

fn main() {
    targets::warm_up();
    afl::fuzz!(|data: &[u8]| {
        alloc::reset();
        targets::loader(data);
    });
}

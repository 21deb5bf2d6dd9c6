// The body of every AFL++ binary in src/bin/ (included there): the counting
// allocator and targets.rs, then `afl_main!(target)` runs that target.

#[path = "alloc.rs"]
mod alloc;
#[path = "targets.rs"]
#[allow(dead_code)]
mod targets;

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

macro_rules! afl_main {
    ($target:ident) => {
        fn main() {
            targets::warm_up();
            afl::fuzz!(|data: &[u8]| {
                alloc::reset();
                targets::$target(data);
            });
        }
    };
}

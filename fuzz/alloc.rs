//! A counting global allocator for the fuzz harnesses: it tracks, per thread,
//! the bytes live, their peak since the last [`reset`], and the largest single
//! allocation, and refuses (returns null, which Rust turns into an abort) any
//! allocation that would take the thread past [`LIMIT_BYTES`], so an input
//! that makes a target allocate without bound is a crash, not a slow test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The most one input may hold at once. The largest seen in a long run is
/// far below (see fuzz/README.md); loading the shipped tokenizers once, before
/// the first [`reset`], is not counted against an input.
pub const LIMIT_BYTES: usize = 256 << 20;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static ARMED: Cell<bool> = const { Cell::new(false) };
}

pub struct Counting;

fn grow(size: usize) -> bool {
    // `try_with`: the thread-local may be gone while a thread exits.
    LIVE.try_with(|live| {
        let now = live.get().saturating_add(size);
        if ARMED.with(Cell::get) && now.saturating_sub(BASE.with(Cell::get)) > LIMIT_BYTES {
            return false;
        }
        live.set(now);
        PEAK.with(|p| p.set(p.get().max(now)));
        LARGEST.with(|l| l.set(l.get().max(size)));
        true
    })
    .unwrap_or(true)
}

fn shrink(size: usize) {
    let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(size)));
}

thread_local! {
    static BASE: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if !grow(layout.size()) {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        shrink(layout.size());
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() && !grow(new_size - layout.size()) {
            return std::ptr::null_mut();
        }
        let out = unsafe { System.realloc(ptr, layout, new_size) };
        if out.is_null() {
            shrink(new_size.saturating_sub(layout.size()));
        } else if new_size < layout.size() {
            shrink(layout.size() - new_size);
        }
        out
    }
}

/// Starts counting one input on this thread: the peak and the largest single
/// allocation restart from what is live now, and the limit applies from here.
pub fn reset() {
    let live = LIVE.with(Cell::get);
    BASE.with(|b| b.set(live));
    PEAK.with(|p| p.set(live));
    LARGEST.with(|l| l.set(0));
    ARMED.with(|a| a.set(true));
}

/// (peak bytes above what was live at [`reset`], largest single allocation) on this thread.
pub fn measured() -> (usize, usize) {
    let base = BASE.with(Cell::get);
    (PEAK.with(Cell::get).saturating_sub(base), LARGEST.with(Cell::get))
}

//! `SharedRows`: a trace matrix's values, the first `len` of a buffer that a
//! later trace may extend in place. A keystroke's trace keeps the previous
//! trace's rows and adds the new token's; the previous trace stays on screen
//! (and in use) until the new one is done, so its rows cannot be moved into
//! the new trace. Copying them was a third of a SmolLM2 keystroke on the CPU
//! (~1.2 MB of per-token stages and logits per token). Instead both traces
//! hold the same buffer: the new one appends past the old one's end, which
//! the old one never reads.
//!
//! The protocol that makes the sharing sound: a buffer has a fixed capacity
//! and a `claimed` end. Values below `claimed` are written once and never
//! again; a writer first moves `claimed` from exactly the end it extends
//! (compare-and-swap, so one writer wins), then writes only the region it
//! claimed, then hands out a `SharedRows` covering it. A `SharedRows` reads
//! only below its own `len`, which was written before it existed. Whoever
//! cannot claim (the end was claimed past, as after a backspace and a new
//! character, or there is no room) copies into a new buffer with headroom.

use std::cell::UnsafeCell;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Buffer {
    values: Box<[UnsafeCell<f32>]>,
    /// Values `..claimed` are written (or being written by their claimant).
    claimed: AtomicUsize,
}

// SAFETY: values are written only inside a region claimed by one
// compare-and-swap on `claimed` (so by one writer), before any SharedRows
// covering them exists; SharedRows read only below their `len`, whose values
// are never written again. Moving a SharedRows to another thread happens
// after the writes (it is created after them), with the synchronisation the
// move itself provides.
unsafe impl Sync for Buffer {}
unsafe impl Send for Buffer {}

impl Buffer {
    /// A buffer of `capacity` values whose first `values.len()` are `values`.
    fn with(values: &[&[f32]], capacity: usize) -> Arc<Buffer> {
        let len: usize = values.iter().map(|v| v.len()).sum();
        let mut data: Vec<UnsafeCell<f32>> = Vec::with_capacity(capacity.max(len));
        data.extend(values.iter().flat_map(|v| v.iter()).map(|&v| UnsafeCell::new(v)));
        data.resize_with(capacity.max(len), || UnsafeCell::new(0.0));
        Arc::new(Buffer { values: data.into_boxed_slice(), claimed: AtomicUsize::new(len) })
    }
}

/// The first `len` values of a buffer some other trace may share.
#[derive(Clone)]
pub struct SharedRows {
    buffer: Arc<Buffer>,
    len: usize,
}

impl SharedRows {
    /// `self`'s first `keep` values then `new`. In place, sharing this
    /// buffer, when nothing was written past `keep` yet and `new` fits;
    /// else copied into a new buffer with room for `headroom` more values
    /// (the next keystrokes' rows). Panics if `keep` passes `self`'s length.
    pub fn extended(&self, keep: usize, new: &[f32], headroom: usize) -> SharedRows {
        assert!(keep <= self.len, "keeping {keep} of {} values", self.len);
        let end = keep + new.len();
        let room = end <= self.buffer.values.len();
        if room && self.buffer.claimed.compare_exchange(keep, end, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            for (cell, &v) in self.buffer.values[keep..end].iter().zip(new) {
                // SAFETY: keep..end was claimed just now by this call alone
                // (the compare-and-swap), and no SharedRows reaches past keep.
                unsafe { *cell.get() = v };
            }
            return SharedRows { buffer: self.buffer.clone(), len: end };
        }
        SharedRows { buffer: Buffer::with(&[&self[..keep], new], end + headroom), len: end }
    }

    /// The first `len` values, sharing the buffer (a trace cut short).
    pub fn prefix(&self, len: usize) -> SharedRows {
        SharedRows { buffer: self.buffer.clone(), len: len.min(self.len) }
    }

    /// Whether `self` and `other` hold the same buffer (for tests).
    pub fn shares_with(&self, other: &SharedRows) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }

    /// The values, to change: in place when this is the buffer's only
    /// holder, else copied out first.
    pub fn make_mut(&mut self) -> &mut [f32] {
        if Arc::get_mut(&mut self.buffer).is_none() {
            self.buffer = Buffer::with(&[&self[..]], self.len);
        }
        let len = self.len;
        let buffer = Arc::get_mut(&mut self.buffer).expect("a buffer of one holder");
        *buffer.claimed.get_mut() = len;
        // SAFETY: this is the buffer's only holder (`get_mut` succeeded), so
        // nothing else reads or writes it while the borrow lives.
        unsafe { std::slice::from_raw_parts_mut(buffer.values.as_mut_ptr().cast::<f32>(), len) }
    }

    /// The values as a vector of their own.
    pub fn into_vec(self) -> Vec<f32> {
        self.to_vec()
    }
}

impl Deref for SharedRows {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: the first `len` values were written before this value
        // existed and are never written again (the module's protocol);
        // UnsafeCell<f32> has f32's layout.
        unsafe { std::slice::from_raw_parts(self.buffer.values.as_ptr().cast::<f32>(), self.len) }
    }
}

impl From<Vec<f32>> for SharedRows {
    fn from(values: Vec<f32>) -> Self {
        let len = values.len();
        SharedRows { buffer: Buffer::with(&[&values], len), len }
    }
}

impl Default for SharedRows {
    fn default() -> Self {
        Vec::new().into()
    }
}

impl PartialEq for SharedRows {
    fn eq(&self, other: &Self) -> bool {
        self[..] == other[..]
    }
}

impl fmt::Debug for SharedRows {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self[..].fmt(f)
    }
}

impl<'a> IntoIterator for &'a SharedRows {
    type Item = &'a f32;
    type IntoIter = std::slice::Iter<'a, f32>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A keystroke appends in place and the old rows read as before; a
    /// second extension of the same old end, or one past a cut, copies; a
    /// cut shares; a full buffer copies with headroom.
    #[test]
    fn extensions_share_the_buffer_only_where_no_one_wrote_past_them() {
        let a = SharedRows::from(vec![1.0, 2.0]);
        let b = a.extended(2, &[3.0], 4); // no room: copied, with 4 more
        assert!(!b.shares_with(&a));
        assert_eq!(&b[..], [1.0, 2.0, 3.0]);
        let c = b.extended(3, &[4.0, 5.0], 4); // room: in place
        assert!(c.shares_with(&b));
        assert_eq!((&b[..], &c[..]), (&[1.0, 2.0, 3.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0][..]));
        // A sibling of c from b's end: c claimed past it, so it copies.
        let sibling = b.extended(3, &[9.0], 0);
        assert!(!sibling.shares_with(&b));
        assert_eq!((&sibling[..], &c[..]), (&[1.0, 2.0, 3.0, 9.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0][..]));
        // A backspace shares; a new character after it copies (4.0 was claimed).
        let cut = c.prefix(3);
        assert!(cut.shares_with(&c));
        let typed = cut.extended(3, &[7.0], 2);
        assert!(!typed.shares_with(&c));
        assert_eq!((&typed[..], &c[..]), (&[1.0, 2.0, 3.0, 7.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0][..]));
        // Past the capacity (3 + 4 = 7 values): copied.
        let d = c.extended(5, &[6.0, 7.0, 8.0], 0);
        assert!(!d.shares_with(&c));
        assert_eq!(d.len(), 8);
    }

    /// Changing a shared value copies it out first; the other holder keeps its values.
    #[test]
    fn make_mut_copies_a_shared_buffer() {
        let a = SharedRows::from(vec![1.0, 2.0, 3.0]);
        let mut b = a.prefix(2);
        b.make_mut()[0] = 5.0;
        assert_eq!((&a[..], &b[..]), (&[1.0, 2.0, 3.0][..], &[5.0, 2.0][..]));
        let mut only = SharedRows::from(vec![1.0]);
        only.make_mut()[0] = 2.0;
        assert_eq!(&only[..], [2.0]);
    }
}

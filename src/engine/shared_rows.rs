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

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A vector's allocation, its values `..claimed` written once each.
struct Buffer {
    ptr: NonNull<f32>,
    capacity: usize,
    /// Values `..claimed` are written (or being written by their claimant).
    claimed: AtomicUsize,
}

// SAFETY: values are written only inside a region claimed by one
// compare-and-swap on `claimed` (so by one writer), before any SharedRows
// covering them exists; SharedRows read only below their `len`, whose values
// are never written again while another holder may read them. Moving a
// SharedRows to another thread happens after the writes (it is created
// after them), with the synchronisation the move itself provides.
unsafe impl Sync for Buffer {}
unsafe impl Send for Buffer {}

impl Buffer {
    /// Takes `values`' allocation as it is (no copy): its length is what is
    /// written, its spare capacity the room for appending.
    fn from_vec(values: Vec<f32>) -> Arc<Buffer> {
        let mut values = ManuallyDrop::new(values);
        let (len, capacity) = (values.len(), values.capacity());
        let ptr = NonNull::new(values.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Arc::new(Buffer { ptr, capacity, claimed: AtomicUsize::new(len) })
    }

    /// A buffer of at least `capacity` values, the `parts` copied in first.
    fn with(parts: &[&[f32]], capacity: usize) -> Arc<Buffer> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut values = Vec::with_capacity(capacity.max(len));
        for part in parts {
            values.extend_from_slice(part);
        }
        Buffer::from_vec(values)
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        // SAFETY: ptr and capacity are those of the vector `from_vec` took
        // apart; f32 needs no drop, so a length of 0 frees the allocation.
        unsafe { drop(Vec::from_raw_parts(self.ptr.as_ptr(), 0, self.capacity)) }
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
    /// buffer, when `new` fits and nothing past `keep` can be read: nothing
    /// was written past it yet, or `self` ends at `keep` and holds the
    /// buffer alone (a trace cut by a backspace, the longer one gone). Else
    /// copied into a new buffer with room for `headroom` more values (the
    /// next keystrokes' rows). Panics if `keep` passes `self`'s length.
    pub fn extended(&self, keep: usize, new: &[f32], headroom: usize) -> SharedRows {
        assert!(keep <= self.len, "keeping {keep} of {} values", self.len);
        let end = keep + new.len();
        let buffer = &self.buffer;
        let claimed = self.claimable(keep, new.len());
        if claimed.is_some_and(|c| buffer.claimed.compare_exchange(c, end, Ordering::AcqRel, Ordering::Acquire).is_ok())
        {
            // SAFETY: keep..end is inside the allocation (end ≤ capacity),
            // claimed by this call alone (the exchange), and no SharedRows
            // reads past keep: none reaches past `claimed` (= keep), or
            // `self`, which ends at keep, is the only one.
            unsafe { std::ptr::copy_nonoverlapping(new.as_ptr(), buffer.ptr.as_ptr().add(keep), new.len()) };
            return SharedRows { buffer: buffer.clone(), len: end };
        }
        SharedRows { buffer: Buffer::with(&[&self[..keep], new], end + headroom), len: end }
    }

    /// Whether [`SharedRows::extended`] would append `extra` values after
    /// the first `keep` in place now (a later claim can still make it copy).
    pub fn extends_in_place(&self, keep: usize, extra: usize) -> bool {
        self.claimable(keep, extra).is_some()
    }

    /// The buffer's written end as loaded now, when `extra` values after the
    /// first `keep` fit and nothing past `keep` can be read (see
    /// [`SharedRows::extended`]). Loaded before the holders are counted: any
    /// extension after this load moves the end, and a claim from it fails.
    fn claimable(&self, keep: usize, extra: usize) -> Option<usize> {
        let claimed = self.buffer.claimed.load(Ordering::Acquire);
        let free = claimed == keep || (keep == self.len && Arc::strong_count(&self.buffer) == 1);
        (keep <= self.len && keep.saturating_add(extra) <= self.buffer.capacity && free).then_some(claimed)
    }

    /// The first `len` values, sharing the buffer (a trace cut short).
    pub fn prefix(&self, len: usize) -> SharedRows {
        SharedRows { buffer: self.buffer.clone(), len: len.min(self.len) }
    }

    /// Whether `self` and `other` hold the same buffer (for tests).
    pub fn shares_with(&self, other: &SharedRows) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
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
        // existed and are not written again while it lives (the module's
        // protocol); len ≤ capacity.
        unsafe { std::slice::from_raw_parts(self.buffer.ptr.as_ptr(), self.len) }
    }
}

impl From<Vec<f32>> for SharedRows {
    /// Takes the vector's allocation, without a copy.
    fn from(values: Vec<f32>) -> Self {
        let len = values.len();
        SharedRows { buffer: Buffer::from_vec(values), len }
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
        assert!(b.extends_in_place(3, 4) && !b.extends_in_place(3, 5) && !b.extends_in_place(2, 1));
        let c = b.extended(3, &[4.0, 5.0], 4); // room: in place
        assert!(c.shares_with(&b));
        assert_eq!((&b[..], &c[..]), (&[1.0, 2.0, 3.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0][..]));
        // A sibling of c from b's end: c claimed past it, so it copies.
        let sibling = b.extended(3, &[9.0], 0);
        assert!(!sibling.shares_with(&b));
        assert_eq!((&sibling[..], &c[..]), (&[1.0, 2.0, 3.0, 9.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0][..]));
        // A backspace shares; a new character after it copies while a
        // longer holder lives (4.0 was claimed)...
        let cut = c.prefix(3);
        assert!(cut.shares_with(&c));
        let typed = cut.extended(3, &[7.0], 2);
        assert!(!typed.shares_with(&c));
        assert_eq!((&typed[..], &c[..]), (&[1.0, 2.0, 3.0, 7.0][..], &[1.0, 2.0, 3.0, 4.0, 5.0][..]));
        // ...and goes in place once the cut is the buffer's only holder.
        let d = c.extended(5, &[6.0], 0);
        let shorter_cut = d.prefix(4);
        drop((b, c, d, cut));
        let cut = shorter_cut;
        let again = cut.extended(4, &[8.0], 0);
        assert!(again.shares_with(&cut));
        assert_eq!((&cut[..], &again[..]), (&[1.0, 2.0, 3.0, 4.0][..], &[1.0, 2.0, 3.0, 4.0, 8.0][..]));
        // Not when the holder reads past the kept values.
        let alone = SharedRows::from(vec![1.0, 2.0, 3.0]);
        let shorter = alone.extended(2, &[5.0], 0);
        assert!(!shorter.shares_with(&alone));
        assert_eq!((&alone[..], &shorter[..]), (&[1.0, 2.0, 3.0][..], &[1.0, 2.0, 5.0][..]));
    }

    /// A vector's spare capacity is room to append; past the capacity, a copy.
    #[test]
    fn a_vector_is_taken_without_a_copy_and_its_spare_capacity_used() {
        let mut v = Vec::with_capacity(4);
        v.extend([1.0, 2.0]);
        let at = v.as_ptr();
        let a = SharedRows::from(v);
        assert_eq!(a.as_ptr(), at);
        let b = a.extended(2, &[3.0, 4.0], 0);
        assert!(b.shares_with(&a));
        let c = b.extended(4, &[5.0], 0);
        assert!(!c.shares_with(&b));
        assert_eq!(&c[..], [1.0, 2.0, 3.0, 4.0, 5.0]);
        assert!(SharedRows::default().is_empty());
    }
}

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
//!
//! Typing inside the last word changes the last token, so most keystrokes
//! keep all but the last row of a trace that is still on screen: they
//! cannot claim, and copied every kept row (at T = 318 on SmolLM2, 400 MB
//! of per-token stages and logits, and 218 MB of scores: 108 of a
//! keystroke's 171 ms natively). So a copy made because another holder
//! claimed past `keep` keeps the buffer it copied from as its [`Spare`]:
//! once the previous trace is gone, nothing else holds that buffer, and its
//! first `keep` values are still the copy's. The next such keystroke writes
//! its new rows there, after those values, and keeps the copy as its spare
//! in turn: two buffers take turns, and no kept row is copied again.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A vector's allocation, its values `..claimed` written once each. (A
/// [`SquareMatrix`](super::SquareMatrix) holds one too, its `claimed` a
/// side: the square `..claimed × ..claimed` is written.)
pub(super) struct Buffer {
    pub(super) ptr: NonNull<f32>,
    pub(super) capacity: usize,
    /// Values `..claimed` are written (or being written by their claimant).
    pub(super) claimed: AtomicUsize,
    /// Moved on each time a [`Spare`] of it is taken (so others go stale).
    epoch: AtomicUsize,
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
        let len = values.len();
        Buffer::claiming(values, len)
    }

    /// Takes `values`' allocation as it is (no copy), `claimed` as given:
    /// the caller wrote what it covers, past the vector's length if need be.
    pub(super) fn claiming(values: Vec<f32>, claimed: usize) -> Arc<Buffer> {
        let mut values = ManuallyDrop::new(values);
        let capacity = values.capacity();
        let ptr = NonNull::new(values.as_mut_ptr()).unwrap_or(NonNull::dangling());
        Arc::new(Buffer { ptr, capacity, claimed: AtomicUsize::new(claimed), epoch: AtomicUsize::new(0) })
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

/// A buffer whose first `common` values (a square's `common × common`
/// corner) equal a copy's, kept by the copy to write its successor into
/// once no one else holds it. Values below `common` are never written
/// again but by a taker of a spare, who first moves the buffer's epoch on
/// from the one recorded here: every other record of the buffer is then
/// stale. (A claim writes at or past its holder's end, and a holder's end
/// is at least any `common` recorded of its buffer.)
#[derive(Clone)]
pub(super) struct Spare {
    buffer: Arc<Buffer>,
    pub(super) common: usize,
    epoch: usize,
}

impl Spare {
    /// `buffer` as the spare of a copy of its first `common` values.
    pub(super) fn of(buffer: &Arc<Buffer>, common: usize) -> Spare {
        Spare { buffer: buffer.clone(), common, epoch: buffer.epoch.load(Ordering::Acquire) }
    }

    /// The spare of a holder that keeps only its first `common` values.
    pub(super) fn within(&self, common: usize) -> Spare {
        Spare { common: self.common.min(common), ..self.clone() }
    }

    /// The buffer, taken for writing at and after `keep` (≤ `common`) with
    /// its claimed end set to `claimed`: when this record is its only
    /// holder (no one reads it, no one else can take it) and still current.
    /// `fits` says whether what will be written fits its allocation.
    pub(super) fn take(&self, keep: usize, claimed: usize, fits: impl FnOnce(&Buffer) -> bool) -> Option<Arc<Buffer>> {
        let next = self.epoch.wrapping_add(1);
        let ours = || self.buffer.epoch.compare_exchange(self.epoch, next, Ordering::AcqRel, Ordering::Acquire).is_ok();
        (self.takeable(keep, fits) && ours()).then(|| {
            self.buffer.claimed.store(claimed, Ordering::Release);
            self.buffer.clone()
        })
    }

    /// Whether [`take`](Self::take) would succeed now.
    pub(super) fn takeable(&self, keep: usize, fits: impl FnOnce(&Buffer) -> bool) -> bool {
        keep <= self.common
            && Arc::strong_count(&self.buffer) == 1
            && fits(&self.buffer)
            && self.buffer.epoch.load(Ordering::Acquire) == self.epoch
    }
}

/// The first `len` values of a buffer some other trace may share.
#[derive(Clone)]
pub struct SharedRows {
    buffer: Arc<Buffer>,
    len: usize,
    /// The buffer this one's first values were copied from, to reuse.
    spare: Option<Spare>,
}

impl SharedRows {
    /// `self`'s first `keep` values then `new`. In place, sharing this
    /// buffer, when `new` fits and nothing past `keep` can be read: nothing
    /// was written past it yet, or `self` ends at `keep` and holds the
    /// buffer alone (a trace cut by a backspace, the longer one gone). Else
    /// in the spare (the module's doc), when nothing else holds it. Else
    /// copied into a new buffer with room for `headroom` more values (the
    /// next keystrokes' rows), which keeps this buffer as its spare when it
    /// could hold the copy. Panics if `keep` passes `self`'s length.
    pub fn extended(&self, keep: usize, new: &[f32], headroom: usize) -> SharedRows {
        assert!(keep <= self.len, "keeping {keep} of {} values", self.len);
        let end = keep + new.len();
        let write = |buffer: &Buffer| {
            // SAFETY: keep..end is inside the allocation (end ≤ capacity),
            // claimed by the caller alone (an exchange on `claimed`, or a
            // spare taken), and no SharedRows reads past keep in it.
            unsafe { std::ptr::copy_nonoverlapping(new.as_ptr(), buffer.ptr.as_ptr().add(keep), new.len()) };
        };
        let buffer = &self.buffer;
        let claimed = self.claimable(keep, new.len());
        if claimed.is_some_and(|c| buffer.claimed.compare_exchange(c, end, Ordering::AcqRel, Ordering::Acquire).is_ok())
        {
            write(buffer);
            let spare = self.spare.as_ref().map(|s| s.within(keep));
            return SharedRows { buffer: buffer.clone(), len: end, spare };
        }
        if let Some(taken) = self.spare.as_ref().and_then(|s| s.take(keep, end, |b| end <= b.capacity)) {
            write(&taken);
            return SharedRows { buffer: taken, len: end, spare: Some(Spare::of(buffer, keep)) };
        }
        let spare = (end <= buffer.capacity).then(|| Spare::of(buffer, keep));
        SharedRows { buffer: Buffer::with(&[&self[..keep], new], end + headroom), len: end, spare }
    }

    /// Whether [`SharedRows::extended`] would append `extra` values after
    /// the first `keep` without copying them now, in this buffer or its
    /// spare (a later claim can still make it copy).
    pub fn extends_in_place(&self, keep: usize, extra: usize) -> bool {
        let end = keep.saturating_add(extra);
        self.claimable(keep, extra).is_some()
            || self.spare.as_ref().is_some_and(|s| s.takeable(keep, |b| end <= b.capacity))
    }

    /// `values`, a copy of `source`'s first `common` values and more, with
    /// `source`'s buffer as its spare when it could hold them (as
    /// [`extended`](Self::extended) keeps it when it copies).
    pub fn copied_from(values: Vec<f32>, source: &SharedRows, common: usize) -> SharedRows {
        let mut rows = SharedRows::from(values);
        if rows.len <= source.buffer.capacity {
            rows.spare = Some(Spare::of(&source.buffer, common.min(source.len).min(rows.len)));
        }
        rows
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
        let len = len.min(self.len);
        SharedRows { buffer: self.buffer.clone(), len, spare: self.spare.as_ref().map(|s| s.within(len)) }
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
        SharedRows { buffer: Buffer::from_vec(values), len, spare: None }
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
        // ...and goes in place once the cut is the buffer's only holder
        // (the copies keep it as their spare: they go too).
        let d = c.extended(5, &[6.0], 0);
        let shorter_cut = d.prefix(4);
        drop((b, c, d, cut, sibling, typed));
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

    /// Keystrokes that change the last value while the trace before is
    /// still read, each dropped once the next exists (as the page does):
    /// the values take turns in two buffers, and a spare that a later
    /// edit wrote into is never taken again.
    #[test]
    fn edits_of_the_last_value_take_turns_in_two_buffers() {
        let a = SharedRows::from(vec![1.0, 2.0, 3.0]);
        let b = a.extended(2, &[4.0], 1);
        assert!(!b.shares_with(&a), "a reads its last value: a copy");
        assert!(!b.extends_in_place(2, 1), "a still holds its buffer");
        let a_at = a.as_ptr();
        drop(a);
        assert!(b.extends_in_place(2, 1) && !b.extends_in_place(2, 3), "the spare, if it has room");
        let c = b.extended(2, &[5.0], 1);
        assert_eq!((c.as_ptr(), &c[..], &b[..]), (a_at, &[1.0, 2.0, 5.0][..], &[1.0, 2.0, 4.0][..]));
        let b_at = b.as_ptr();
        drop(b);
        let d = c.extended(2, &[6.0], 1);
        assert_eq!((d.as_ptr(), &d[..], &c[..]), (b_at, &[1.0, 2.0, 6.0][..], &[1.0, 2.0, 5.0][..]));
        // A clone of d holds its spare too: not taken while both live.
        let twin = d.clone();
        let e = d.extended(1, &[7.0], 0);
        assert!(e.as_ptr() != a_at && e.as_ptr() != b_at);
        assert_eq!((&e[..], &c[..]), (&[1.0, 7.0][..], &[1.0, 2.0, 5.0][..]));
        drop((twin, e));
        // c's spare (b's buffer) was written by d: stale, so c copies.
        drop(d);
        let f = c.extended(2, &[8.0], 0);
        assert!(f.as_ptr() != b_at && f.as_ptr() != a_at);
        assert_eq!((&f[..], &c[..]), (&[1.0, 2.0, 8.0][..], &[1.0, 2.0, 5.0][..]));
        // A copy forced by room alone keeps no spare (the buffer could not hold it).
        let g = SharedRows::from(vec![1.0]).extended(1, &[2.0], 0);
        assert!(g.spare.is_none());
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

//! `SquareMatrix`: one head's T×T weights in a trace (or the raw scores a
//! GPU run read back), kept so that a keystroke's trace can grow the
//! previous trace's matrix in place. A new token adds a row and a column:
//! the old queries against the new key (a weight of 0 under a causal or
//! window mask; `grown` can fill other values) and the new query's row. Row-major at
//! a stride wider than T, both go where the previous trace never reads, as
//! [`SharedRows`](super::SharedRows) appends rows. Copying these matrices
//! into each keystroke's trace was most of a SmolLM2 keystroke at T = 318
//! (270 heads × 2 × T² values, 218 MB), and of a long run taken a piece of
//! rows at a time.
//!
//! The same protocol as `SharedRows`, on a side instead of a length: a
//! buffer's `claimed` side says that the square `..claimed × ..claimed` is
//! written (or being written by its claimant); a matrix of side `t` reads
//! only its `..t × ..t`, written before it existed; a writer first moves
//! `claimed` from exactly the side it grows (compare-and-swap), then writes
//! only the cells of the larger square outside the smaller one. A copy
//! keeps the buffer it copied from as its spare, as `SharedRows` does.

use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::Serialize;

use super::shared_rows::{Buffer, Spare};
use super::Matrix;

/// A square matrix at a row stride of at least its side, its values
/// possibly shared with a larger or smaller matrix of another trace.
#[derive(Clone)]
pub struct SquareMatrix {
    side: usize,
    stride: usize,
    buffer: Arc<Buffer>,
    /// The buffer this one's corner was copied from, and its stride (as
    /// [`SharedRows`](super::SharedRows) keeps one: a keystroke that
    /// changes the last token writes there once the previous trace is gone).
    spare: Option<(Spare, usize)>,
}

/// A borrowed row-major matrix whose rows may lie `stride` values apart: a
/// [`Matrix`] or a [`SquareMatrix`] as the rasters and exports read them.
/// It reads each row's first `cols` values only: what lies between rows
/// may belong to a larger matrix of another trace, even be written by it,
/// so it holds a pointer, never a slice across rows.
#[derive(Clone, Copy)]
pub struct MatrixView<'a> {
    pub rows: usize,
    pub cols: usize,
    stride: usize,
    ptr: NonNull<f32>,
    life: PhantomData<&'a [f32]>,
}

// SAFETY: a view only reads values that nothing writes while it lives (a
// borrowed matrix's, or a square's written corner), like a `&[f32]`.
unsafe impl Send for MatrixView<'_> {}
unsafe impl Sync for MatrixView<'_> {}

impl<'a> MatrixView<'a> {
    /// Row `i`'s `cols` values. Panics past the last row.
    pub fn row(&self, i: usize) -> &'a [f32] {
        assert!(i < self.rows, "row {i} of {}", self.rows);
        // SAFETY: the view's constructors guarantee that the first `cols`
        // values of each of its `rows` rows, `stride` apart from `ptr`, are
        // initialised and unchanging for 'a.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(i * self.stride), self.cols) }
    }

    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.row(i)[j]
    }

    /// Rows `row0..row0 + rows` and columns `col0..col0 + cols` of it, in
    /// place. Panics if they pass its edges.
    pub fn window(&self, row0: usize, col0: usize, rows: usize, cols: usize) -> MatrixView<'a> {
        assert!(row0 + rows <= self.rows && col0 + cols <= self.cols, "a window past the matrix's edges");
        if rows == 0 || cols == 0 {
            return MatrixView { rows, cols, ..*self };
        }
        // SAFETY: row0 < self.rows and col0 < self.cols, so the offset lies inside a row the view reads.
        let ptr = unsafe { self.ptr.add(row0 * self.stride + col0) };
        MatrixView { rows, cols, stride: self.stride, ptr, life: PhantomData }
    }

    /// Every value, row by row.
    pub fn values(&self) -> impl Iterator<Item = f32> + 'a {
        let this = *self;
        (0..self.rows).flat_map(move |i| this.row(i).iter().copied())
    }

    /// The values as a dense matrix of their own.
    pub fn to_matrix(&self) -> Matrix {
        Matrix::from_vec(self.rows, self.cols, self.values().collect())
    }

    /// Rows as nested lists; non-finite entries (masked scores) become `null`.
    pub fn to_rows(&self) -> Vec<Vec<Option<f32>>> {
        (0..self.rows).map(|i| self.row(i).iter().map(|&x| x.is_finite().then_some(x)).collect()).collect()
    }
}

impl fmt::Debug for MatrixView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatrixView").field("rows", &self.rows).field("cols", &self.cols).finish()
    }
}

impl<'a> From<&'a Matrix> for MatrixView<'a> {
    fn from(m: &'a Matrix) -> Self {
        let data: &'a [f32] = &m.data;
        assert!(data.len() >= m.rows * m.cols, "matrix data does not match its shape");
        let ptr = NonNull::new(data.as_ptr().cast_mut()).unwrap_or(NonNull::dangling());
        MatrixView { rows: m.rows, cols: m.cols, stride: m.cols, ptr, life: PhantomData }
    }
}

impl<'a> From<&'a SquareMatrix> for MatrixView<'a> {
    fn from(m: &'a SquareMatrix) -> Self {
        m.view()
    }
}

impl SquareMatrix {
    /// `side × side` values, row-major (the vector's allocation taken, no copy).
    pub fn from_vec(side: usize, data: Vec<f32>) -> Self {
        assert_eq!(data.len(), side * side, "square matrix data does not match its side");
        let buffer = Buffer::claiming(data, side);
        SquareMatrix { side, stride: side, buffer, spare: None }
    }

    pub fn side(&self) -> usize {
        self.side
    }

    pub fn rows(&self) -> usize {
        self.side
    }

    pub fn cols(&self) -> usize {
        self.side
    }

    pub fn view(&self) -> MatrixView<'_> {
        // The first `side` values of each of the first `side` rows (inside
        // the allocation: side ≤ stride, stride² ≤ capacity) were written
        // before this matrix existed and are not written again while it
        // lives (the module's protocol): what the view reads.
        MatrixView { rows: self.side, cols: self.side, stride: self.stride, ptr: self.buffer.ptr, life: PhantomData }
    }

    pub fn row(&self, i: usize) -> &[f32] {
        assert!(i < self.side, "row {i} of {}", self.side);
        self.view().row(i)
    }

    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.row(i)[j]
    }

    /// The values as a dense matrix of their own.
    pub fn to_matrix(&self) -> Matrix {
        self.view().to_matrix()
    }

    /// Rows as nested lists; non-finite entries become `null` (as [`Matrix::to_rows`]).
    pub fn to_rows(&self) -> Vec<Vec<Option<f32>>> {
        self.view().to_rows()
    }

    /// The top-left `p × p` corner (at most all), sharing the buffer.
    pub fn first(&self, p: usize) -> SquareMatrix {
        let side = p.min(self.side);
        let spare = self.spare.as_ref().map(|(s, stride)| (s.within(side), *stride));
        SquareMatrix { side, stride: self.stride, buffer: self.buffer.clone(), spare }
    }

    /// The `side × side` matrix whose top-left `keep × keep` corner is
    /// `self`'s: `new_cols(i, cells)` fills row `i < keep`'s cells in
    /// columns `keep..side`, and `new_rows` holds rows `keep..side` whole
    /// (row-major, `side` values each). In place, sharing this buffer, when
    /// they fit its stride and nothing past `keep` can be read (as
    /// [`SharedRows::extended`](super::SharedRows::extended)); else in the
    /// spare when nothing else holds it; else in a copy at a stride with
    /// room for `room` more rows and columns, which keeps this buffer as its
    /// spare. Panics if `keep` passes `self`'s side or `side`, or `new_rows`
    /// is not `(side − keep) × side` values.
    pub fn grown(
        &self,
        keep: usize,
        side: usize,
        room: usize,
        new_cols: &mut dyn FnMut(usize, &mut [f32]),
        new_rows: &[f32],
    ) -> SquareMatrix {
        assert!(keep <= self.side && keep <= side, "keeping {keep} of {} (to {side})", self.side);
        assert_eq!(new_rows.len(), (side - keep) * side, "new rows of a {side}-wide square after {keep}");
        let own = self
            .claimable(keep, side)
            .filter(|&c| self.buffer.claimed.compare_exchange(c, side, Ordering::AcqRel, Ordering::Acquire).is_ok());
        let taken = || {
            let (spare, stride) = self.spare.as_ref()?;
            let fits = |b: &Buffer| side <= *stride && stride.checked_mul(*stride).is_some_and(|n| n <= b.capacity);
            Some((spare.take(keep, side, fits)?, *stride))
        };
        let (buffer, stride, spare) = if own.is_some() {
            let spare = self.spare.as_ref().map(|(s, stride)| (s.within(keep), *stride));
            (self.buffer.clone(), self.stride, spare)
        } else if let Some((buffer, stride)) = taken() {
            (buffer, stride, Some((Spare::of(&self.buffer, keep), self.stride)))
        } else {
            let stride = side.saturating_add(room);
            let values: Vec<f32> = Vec::with_capacity(stride.checked_mul(stride).expect("a square's size"));
            let buffer = Buffer::claiming(values, side);
            for i in 0..keep {
                // SAFETY: row i's first keep values lie inside the new
                // allocation (keep ≤ side ≤ stride), which nothing else holds yet.
                unsafe {
                    std::ptr::copy_nonoverlapping(self.row(i).as_ptr(), buffer.ptr.as_ptr().add(i * stride), keep)
                };
            }
            let spare = (side <= self.stride).then(|| (Spare::of(&self.buffer, keep), self.stride));
            (buffer, stride, spare)
        };
        let base = buffer.ptr.as_ptr();
        for i in 0..keep {
            // SAFETY: cells keep..side of row i are inside the allocation
            // (side ≤ stride) and outside every square anyone reads: claimed
            // by this call (the exchange above, a spare taken, or a new
            // buffer). Zeroed first, so the slice is initialised.
            let cells = unsafe {
                let at = base.add(i * stride + keep);
                std::ptr::write_bytes(at, 0, side - keep);
                std::slice::from_raw_parts_mut(at, side - keep)
            };
            new_cols(i, cells);
        }
        for (r, row) in new_rows.chunks_exact(side.max(1)).enumerate() {
            // SAFETY: row keep + r < side ≤ stride, inside the allocation and
            // claimed by this call, as above.
            unsafe { std::ptr::copy_nonoverlapping(row.as_ptr(), base.add((keep + r) * stride), side) };
        }
        SquareMatrix { side, stride, buffer, spare }
    }

    /// Whether [`grown`](Self::grown) from `keep` to `side` would go in
    /// place now, in this buffer or its spare (a later claim can still
    /// make it copy). (For tests: a run asks its logits' `SharedRows`.)
    #[cfg(test)]
    pub fn grows_in_place(&self, keep: usize, side: usize) -> bool {
        self.claimable(keep, side).is_some()
            || self.spare.as_ref().is_some_and(|(s, stride)| side <= *stride && s.takeable(keep, |_| true))
    }

    /// The buffer's claimed side as loaded now, when a square of `side`
    /// fits the stride and nothing past `keep` can be read: nothing was
    /// claimed past it, or `self` ends at `keep` and holds the buffer alone.
    fn claimable(&self, keep: usize, side: usize) -> Option<usize> {
        let claimed = self.buffer.claimed.load(Ordering::Acquire);
        let free = claimed == keep || (keep == self.side && Arc::strong_count(&self.buffer) == 1);
        (keep <= self.side && keep <= side && side <= self.stride && free).then_some(claimed)
    }

    /// Whether `self` and `other` hold the same buffer (for tests).
    pub fn shares_with(&self, other: &SquareMatrix) -> bool {
        Arc::ptr_eq(&self.buffer, &other.buffer)
    }
}

impl Default for SquareMatrix {
    fn default() -> Self {
        Self::from_vec(0, Vec::new())
    }
}

impl PartialEq for SquareMatrix {
    fn eq(&self, other: &Self) -> bool {
        self.side == other.side && (0..self.side).all(|i| self.row(i) == other.row(i))
    }
}

impl fmt::Debug for SquareMatrix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SquareMatrix({}×{})", self.side, self.side)
    }
}

impl Serialize for SquareMatrix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_rows().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(m: &SquareMatrix) -> Vec<f32> {
        m.view().values().collect()
    }

    /// A 2×2 grown to 3×3 and 4×4: in place while nothing was claimed past
    /// the side it grows, a copy otherwise; every matrix reads as built.
    #[test]
    fn growing_shares_the_buffer_only_where_no_one_wrote_past_it() {
        let a = SquareMatrix::from_vec(2, vec![1.0, 2.0, 3.0, 4.0]);
        // No room at stride 2: copied, with room for 2 more.
        let b = a.grown(2, 3, 2, &mut |i, c| c[0] = 10.0 + i as f32, &[5.0, 6.0, 7.0]);
        assert!(!b.shares_with(&a));
        assert_eq!(dense(&b), [1.0, 2.0, 10.0, 3.0, 4.0, 11.0, 5.0, 6.0, 7.0]);
        assert!(b.grows_in_place(3, 5) && !b.grows_in_place(3, 6) && !b.grows_in_place(2, 3));
        let c = b.grown(3, 4, 0, &mut |i, c| c[0] = 20.0 + i as f32, &[8.0, 9.0, 10.0, 11.0]);
        assert!(c.shares_with(&b));
        assert_eq!(dense(&b), [1.0, 2.0, 10.0, 3.0, 4.0, 11.0, 5.0, 6.0, 7.0], "b reads as before");
        assert_eq!(c.row(0), [1.0, 2.0, 10.0, 20.0]);
        assert_eq!(c.row(3), [8.0, 9.0, 10.0, 11.0]);
        // A sibling of c from b's side: c claimed past it, so it copies.
        let sibling = b.grown(3, 4, 0, &mut |_, c| c.fill(-1.0), &[0.0; 4]);
        assert!(!sibling.shares_with(&b));
        assert_eq!(c.row(0), [1.0, 2.0, 10.0, 20.0], "c unchanged by its sibling");
        assert_eq!(sibling.row(0), [1.0, 2.0, 10.0, -1.0]);
        // A cut shares; a new token after it copies while the longer one lives...
        let cut = c.first(3);
        assert!(cut.shares_with(&c));
        assert_eq!(dense(&cut), dense(&b));
        let typed = cut.grown(3, 4, 1, &mut |_, c| c.fill(7.0), &[7.0; 4]);
        assert!(!typed.shares_with(&c));
        assert_eq!(c.row(3), [8.0, 9.0, 10.0, 11.0]);
        // ...and goes in place once the cut is its buffer's only holder
        // (the copies keep it as their spare: they go too).
        drop((a, b, c, sibling, typed));
        let again = cut.grown(3, 4, 0, &mut |_, c| c.fill(3.0), &[4.0; 4]);
        assert!(again.shares_with(&cut));
        assert_eq!(dense(&cut), [1.0, 2.0, 10.0, 3.0, 4.0, 11.0, 5.0, 6.0, 7.0]);
        assert_eq!(again.row(1), [3.0, 4.0, 11.0, 3.0]);
        assert_eq!(again.row(3), [4.0; 4]);
        // Not when the holder reads past the kept corner.
        let alone = SquareMatrix::from_vec(2, vec![1.0, 2.0, 3.0, 4.0]);
        let smaller = alone.grown(1, 2, 0, &mut |_, c| c[0] = 9.0, &[8.0, 8.0]);
        assert!(!smaller.shares_with(&alone));
        assert_eq!((dense(&alone), dense(&smaller)), (vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 9.0, 8.0, 8.0]));
    }

    /// Keystrokes that change the last token while the trace before is
    /// still read, each dropped once the next exists: the squares take
    /// turns in two buffers; a stale spare is never taken.
    #[test]
    fn edits_of_the_last_row_take_turns_in_two_buffers() {
        let a = SquareMatrix::from_vec(2, vec![1.0, 2.0, 3.0, 4.0]);
        let edit = |m: &SquareMatrix, v: f32| m.grown(1, 2, 1, &mut |_, c| c[0] = v, &[v, v]);
        let b = edit(&a, 5.0);
        assert!(!b.shares_with(&a) && !b.grows_in_place(1, 2));
        let a_at = a.row(0).as_ptr();
        drop(a);
        assert!(b.grows_in_place(1, 2) && !b.grows_in_place(1, 4), "the spare, if it has room");
        let c = edit(&b, 6.0);
        assert_eq!(c.row(0).as_ptr(), a_at);
        assert_eq!((dense(&c), dense(&b)), (vec![1.0, 6.0, 6.0, 6.0], vec![1.0, 5.0, 5.0, 5.0]));
        let b_at = b.row(0).as_ptr();
        drop(b);
        let d = edit(&c, 7.0);
        assert_eq!(d.row(0).as_ptr(), b_at);
        assert_eq!((dense(&d), dense(&c)), (vec![1.0, 7.0, 7.0, 7.0], vec![1.0, 6.0, 6.0, 6.0]));
        drop(d);
        // c's spare (b's buffer) was written by d: stale, so c copies.
        let e = edit(&c, 8.0);
        assert!(e.row(0).as_ptr() != b_at && e.row(0).as_ptr() != a_at);
        assert_eq!((dense(&e), dense(&c)), (vec![1.0, 8.0, 8.0, 8.0], vec![1.0, 6.0, 6.0, 6.0]));
    }

    /// Growing by many at once, from nothing and into a wide stride, equals
    /// building the dense matrix; the view, rows and serialisation agree.
    #[test]
    fn a_grown_square_equals_the_dense_matrix_built_at_once() {
        let cell = |i: usize, j: usize| (i * 100 + j) as f32;
        let full = |t: usize| (0..t * t).map(|c| cell(c / t, c % t)).collect::<Vec<_>>();
        let mut m = SquareMatrix::default();
        for (keep, side) in [(0, 3), (3, 4), (4, 9), (9, 9), (9, 10)] {
            let rows: Vec<f32> = (keep..side).flat_map(|i| (0..side).map(move |j| cell(i, j))).collect();
            m = m.grown(
                keep,
                side,
                5,
                &mut |i, c: &mut [f32]| c.iter_mut().enumerate().for_each(|(j, v)| *v = cell(i, keep + j)),
                &rows,
            );
            assert_eq!(dense(&m), full(side), "{keep} → {side}");
            assert_eq!(m.to_matrix(), Matrix::from_vec(side, side, full(side)));
        }
        assert_eq!(m.at(7, 2), 702.0);
        assert_eq!(serde_json::to_string(&m.first(2)).unwrap(), "[[0.0,1.0],[100.0,101.0]]");
        assert_eq!(m.first(2), SquareMatrix::from_vec(2, vec![0.0, 1.0, 100.0, 101.0]));
    }
}

//! A model file's bytes, read a range at a time. The loaders never need a
//! file whole: they read its header, then each tensor's bytes straight into
//! the matrix that keeps them, a piece at a time. In the page the file is a
//! JavaScript byte array (a download, a file the user gave), outside
//! WebAssembly memory, so opening a model costs that memory its weights and
//! not the file as well (`ui::web::models::JsBytes`); natively it is a slice.

/// A file's bytes, readable by range.
pub trait FileBytes {
    /// The file's length in bytes.
    fn size(&self) -> u64;

    /// Copies the `dst.len()` bytes at `at` into `dst`. Callers keep the
    /// range inside [`FileBytes::size`] ([`read_vec`] checks it; the
    /// loaders check every tensor's range against the size when they read
    /// the header); an implementation may panic on a range past the end.
    fn copy_to(&self, at: u64, dst: &mut [u8]);
}

impl FileBytes for [u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn copy_to(&self, at: u64, dst: &mut [u8]) {
        let at = at as usize; // in range: the caller checked it against `size`
        dst.copy_from_slice(&self[at..at + dst.len()]);
    }
}

impl FileBytes for Vec<u8> {
    fn size(&self) -> u64 {
        self.as_slice().size()
    }

    fn copy_to(&self, at: u64, dst: &mut [u8]) {
        self.as_slice().copy_to(at, dst)
    }
}

/// A reference to a file is the file: `&&[u8]` (a sized type) becomes a
/// `&dyn FileBytes`, which the loaders take so that they are compiled once
/// whatever the caller's file type.
impl<T: FileBytes + ?Sized> FileBytes for &T {
    fn size(&self) -> u64 {
        (**self).size()
    }

    fn copy_to(&self, at: u64, dst: &mut [u8]) {
        (**self).copy_to(at, dst)
    }
}

/// `len` bytes of `file` from `start`, read a piece at a time by whoever
/// holds it (a tensor widened in pieces never holds all its bytes at once).
/// Its makers keep it inside the file.
pub struct FileRange<'a, F: FileBytes + ?Sized> {
    pub file: &'a F,
    pub start: u64,
    pub len: usize,
}

impl<'a> FileRange<'a, [u8]> {
    /// All of `bytes`.
    pub fn whole(bytes: &'a [u8]) -> Self {
        Self { file: bytes, start: 0, len: bytes.len() }
    }
}

impl<'a, F: FileBytes + ?Sized> FileRange<'a, F> {
    /// Copies the range's bytes from `at` (relative to its start) into `dst`.
    /// Panics if that passes the range's end.
    pub fn copy_to(&self, at: usize, dst: &mut [u8]) {
        assert!(at + dst.len() <= self.len, "bytes {at}..+{} of a {}-byte range", dst.len(), self.len);
        self.file.copy_to(self.start + at as u64, dst);
    }

    /// The range read `piece` bytes at a time (the last piece may be
    /// shorter), each into the same buffer.
    pub fn pieces(self, piece: usize) -> Pieces<'a, F> {
        Pieces { buf: vec![0; piece.max(1).min(self.len)], range: self, from: 0 }
    }
}

/// [`FileRange::pieces`]: the next piece with [`Pieces::next_piece`].
pub struct Pieces<'a, F: FileBytes + ?Sized> {
    range: FileRange<'a, F>,
    buf: Vec<u8>,
    from: usize,
}

impl<F: FileBytes + ?Sized> Pieces<'_, F> {
    /// The next piece of the range, read from the file, or `None` at its end.
    pub fn next_piece(&mut self) -> Option<&[u8]> {
        let n = self.buf.len().min(self.range.len.checked_sub(self.from)?);
        if n == 0 {
            return None;
        }
        self.range.copy_to(self.from, &mut self.buf[..n]);
        self.from += n;
        Some(&self.buf[..n])
    }
}

/// `len` bytes at `at`, or `None` where that runs past the end (the caller
/// bounds `len` before asking: it is allocated whole).
pub fn read_vec<F: FileBytes + ?Sized>(file: &F, at: u64, len: u64) -> Option<Vec<u8>> {
    let end = at.checked_add(len)?;
    if end > file.size() {
        return None;
    }
    let mut out = vec![0; usize::try_from(len).ok()?];
    file.copy_to(at, &mut out);
    Some(out)
}

/// The whole of a small file (a config, a tokenizer, an index), or `None`
/// when it is larger than `limit` bytes.
pub fn read_small<F: FileBytes + ?Sized>(file: &F, limit: u64) -> Option<Vec<u8>> {
    (file.size() <= limit).then(|| read_vec(file, 0, file.size())).flatten()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A file that records every read: the loaders' tests check that no
    /// read is larger than a piece and that each byte is read once.
    pub(crate) struct Counted<'a> {
        pub bytes: &'a [u8],
        pub reads: RefCell<Vec<(u64, usize)>>,
    }

    impl<'a> Counted<'a> {
        pub(crate) fn new(bytes: &'a [u8]) -> Self {
            Self { bytes, reads: RefCell::new(Vec::new()) }
        }

        /// The largest single read, and the bytes read in all.
        pub(crate) fn largest_and_total(&self) -> (usize, usize) {
            let reads = self.reads.borrow();
            (reads.iter().map(|r| r.1).max().unwrap_or(0), reads.iter().map(|r| r.1).sum())
        }
    }

    impl FileBytes for Counted<'_> {
        fn size(&self) -> u64 {
            self.bytes.size()
        }

        fn copy_to(&self, at: u64, dst: &mut [u8]) {
            self.reads.borrow_mut().push((at, dst.len()));
            self.bytes.copy_to(at, dst)
        }
    }

    #[test]
    fn a_range_is_read_in_pieces_the_last_one_ragged() {
        let file = b"abcdefghij".to_vec();
        let mut pieces = FileRange { file: &file[..], start: 2, len: 7 }.pieces(3);
        let mut got = Vec::new();
        while let Some(piece) = pieces.next_piece() {
            got.push(piece.to_vec());
        }
        assert_eq!(got, [b"cde".to_vec(), b"fgh".to_vec(), b"i".to_vec()]);
        assert!(FileRange { file: &file[..], start: 4, len: 0 }.pieces(3).next_piece().is_none());
    }

    #[test]
    fn ranges_past_the_end_read_nothing() {
        let file = b"abcdef".to_vec();
        assert_eq!(read_vec(&file, 2, 3).as_deref(), Some(&b"cde"[..]));
        assert_eq!(read_vec(&file, 4, 3), None);
        assert_eq!(read_vec(&file, u64::MAX, 2), None);
        assert_eq!(read_vec(&file[..], 6, 0).as_deref(), Some(&b""[..]));
        assert_eq!(read_small(&file, 6).as_deref(), Some(&b"abcdef"[..]));
        assert_eq!(read_small(&file, 5), None);
    }
}

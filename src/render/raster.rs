//! The CPU fallback's heatmaps: a matrix of the trace rasterised to RGBA with
//! the same colour maps, gaps, hatching and hover highlight as
//! shaders/heatmap.wgsl, for a page without WebGPU (the UI only blits the
//! pixels onto a 2D canvas).

use super::heatmap::ColourMap;
use crate::engine::{Mask, Matrix, MatrixView};

/// Polynomial fit of matplotlib's viridis, as heatmap.wgsl (sRGB components in [0, 1]).
pub fn viridis(t: f32) -> [f32; 3] {
    const C: [[f32; 3]; 7] = [
        [0.277_727_33, 0.005_407_344_5, 0.334_099_8],
        [0.105_093_04, 1.404_613_5, 1.384_590_2],
        [-0.330_861_83, 0.214_847_56, 0.095_095_16],
        [-4.634_230_5, -5.799_101, -19.332_441],
        [6.228_27, 14.179_933, 56.690_55],
        [4.776_385, -13.745_145, -65.353_03],
        [-5.435_456, 4.645_852_6, 26.312_435],
    ];
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let mut v = C[6][c];
        for k in (0..6).rev() {
            v = C[k][c] + t * v;
        }
        *o = v.clamp(0.0, 1.0);
    }
    out
}

fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t]
}

/// Purple (−1) → near-white (0) → orange (+1), as heatmap.wgsl.
pub fn diverging(s: f32) -> [f32; 3] {
    let mid = [0.97, 0.97, 0.97];
    let (far, near) = if s < 0.0 {
        ([0.329, 0.153, 0.533], [0.698, 0.671, 0.824])
    } else {
        ([0.702, 0.345, 0.024], [0.992, 0.722, 0.388])
    };
    let a = s.abs().clamp(0.0, 1.0);
    if a < 0.5 {
        mix(mid, near, a * 2.0)
    } else {
        mix(near, far, (a - 0.5) * 2.0)
    }
}

/// The cells of a drawn matrix that the attention mask removed: hatched,
/// and left out of the colour range.
#[derive(Debug, Clone, Copy)]
pub enum Hidden<'a> {
    /// Where `mask` forbids key `col0 + j` to query `row0 + i`: a head's
    /// matrix, or the window of it cut at (`row0`, `col0`).
    Mask { mask: Mask, row0: usize, col0: usize },
    /// Where this matrix (the masked scores read back, of the drawn
    /// matrix's shape) is −∞.
    Cells(&'a Matrix),
}

impl Hidden<'_> {
    /// A whole head's matrix under `mask`.
    pub fn mask(mask: Mask) -> Self {
        Hidden::Mask { mask, row0: 0, col0: 0 }
    }

    /// Row `i`'s cells among `0..cols` that may be shown: a mask's are one
    /// run `lo..hi`; `Cells` may have holes anywhere, so the whole row, with
    /// itself to ask cell by cell ([`Self::hides`]).
    fn run(self, i: usize, cols: usize) -> ((usize, usize), Option<Self>) {
        match self {
            Hidden::Mask { mask, row0, col0 } => {
                let (lo, hi) = mask.keys(row0 + i, col0 + cols);
                ((lo.saturating_sub(col0), hi.saturating_sub(col0)), None)
            }
            Hidden::Cells(_) => ((0, cols), Some(self)),
        }
    }

    /// Whether cell (`i`, `j`) is masked.
    pub fn hides(&self, i: usize, j: usize) -> bool {
        match *self {
            Hidden::Mask { mask, row0, col0 } => !mask.allows(row0 + i, col0 + j),
            Hidden::Cells(m) => m.data.get(i * m.cols + j).is_some_and(|x| *x == f32::NEG_INFINITY),
        }
    }
}

/// The smallest and largest value of `values`, skipping the cells `masked`
/// hides (0, 0 when none is left): the CPU twin of value_range.wgsl.
pub fn value_range<'a>(values: impl Into<MatrixView<'a>>, masked: Option<Hidden<'_>>) -> (f32, f32) {
    let values = values.into();
    let mut range: Option<(f32, f32)> = None;
    for i in 0..values.rows {
        let row = values.row(i);
        let ((lo, hi), holes) = masked.map_or(((0, row.len()), None), |m| m.run(i, row.len()));
        for (j, &v) in row.iter().enumerate().take(hi).skip(lo) {
            if !holes.is_some_and(|m| m.hides(i, j)) {
                range = Some(range.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
            }
        }
    }
    range.unwrap_or((0.0, 0.0))
}

/// The cell under each of `pixels` pixels across `cells` cells, and whether
/// the pixel falls in the 1-pixel gap drawn between cells 8 pixels or wider.
pub fn pixel_cells(pixels: usize, cells: usize) -> Vec<(usize, bool)> {
    let cell = pixels as f32 / cells.max(1) as f32;
    (0..pixels)
        .map(|p| {
            let at = p as f32 + 0.5;
            let k = ((at / cell) as usize).min(cells.saturating_sub(1));
            (k, cell >= 8.0 && at - k as f32 * cell < 1.0)
        })
        .collect()
}

/// The cells a `width × height` raster of a `rows × cols` matrix shows
/// when it has fewer pixels than cells: the row under each pixel row and
/// the column under each pixel column ([`pixel_cells`]). A matrix of just
/// those cells, drawn at that size, gives the very pixels the whole one
/// does (no gaps at under a pixel a cell), so a map shrunk to a tile reads
/// `height × width` values, not `rows × cols` (the model grid's tiles of a
/// long text, whose weights may be computed when read). `None` when the
/// raster has as many pixels as cells or more, either way.
pub fn sampled_cells(rows: usize, cols: usize, width: usize, height: usize) -> Option<(Vec<usize>, Vec<usize>)> {
    (rows > height && cols > width && width > 0 && height > 0).then(|| {
        let cells = |pixels, cells| pixel_cells(pixels, cells).into_iter().map(|(k, _)| k).collect();
        (cells(height, rows), cells(width, cols))
    })
}

/// What to draw and how.
#[derive(Debug, Clone, Copy)]
pub struct Raster<'a> {
    pub values: MatrixView<'a>,
    pub masked: Option<Hidden<'a>>,
    pub colour_map: ColourMap,
    pub range: (f32, f32),
    pub width: usize,
    pub height: usize,
    pub hover: Option<(usize, usize)>,
}

const BACKGROUND: [f32; 3] = [0.12, 0.13, 0.15];

/// The colour of `v` under `colour_map` spanning `(lo, hi)`, as heatmap.wgsl
/// maps it: viridis clamped to [lo, hi], or diverging symmetric to max(|lo|, |hi|).
pub fn colour(colour_map: ColourMap, (lo, hi): (f32, f32), v: f32) -> [f32; 3] {
    match colour_map {
        ColourMap::Sequential => viridis(((v - lo) / (hi - lo).max(1e-12)).clamp(0.0, 1.0)),
        ColourMap::Diverging => diverging(v / lo.abs().max(hi.abs()).max(1e-12)),
    }
}

impl Raster<'_> {
    /// RGBA8 pixels, `width × height`, row-major, each packed in a `u32` as
    /// its bytes lie in memory (see [`as_bytes`]). Each cell's colour is
    /// computed once and written across its pixels, and a pixel row that
    /// repeats one above it is copied (a keystroke redraws a 500-pixel map
    /// from T² colours, not from a colour per pixel). A matrix with more
    /// cells than pixels across or down is read only at the cells under
    /// pixels (a 2,048-token map in 600 pixels: 600² colours, not 2,048²).
    pub fn pixels(&self) -> Vec<u32> {
        let (rows, cols) = (self.values.rows, self.values.cols);
        let background = pack(BACKGROUND);
        let mut out = vec![background; self.width * self.height];
        if out.is_empty() || rows == 0 || cols == 0 {
            return out;
        }
        // The cells under pixels, each row and column once (`shown_*`), and
        // each pixel's as a place among those (pixel_cells never decreases).
        let (shown_cols, xs) = shown_cells(self.width, cols);
        let (shown_rows, ys) = shown_cells(self.height, rows);
        let cols = shown_cols.len();
        let place = |shown: &[usize], cell: usize| shown.binary_search(&cell).ok();
        let (hover_row, hover_col) =
            (self.hover.and_then(|h| place(&shown_rows, h.0)), self.hover.and_then(|h| place(&shown_cols, h.1)));
        let lit = |c: [f32; 3], lit: bool| if lit { mix(c, [1.0; 3], 0.18) } else { c };
        // Each shown cell's colour, the hover highlight included (None: masked, hatched per pixel),
        // a row at a time over its run of cells the mask shows: a masked cell needs no colour
        // (half a causal map's). (An iterator chain over every cell, each tested against the
        // mask, took ~30 ns a cell in the browser: ~8 ms of a keystroke's 500 × 500 map.)
        let mut cells: Vec<Option<u32>> = vec![None; shown_rows.len() * cols];
        for ((r, out), &i) in cells.chunks_exact_mut(cols).enumerate().zip(&shown_rows) {
            let ((lo, hi), holes) = self.masked.map_or(((0, self.values.cols), None), |m| m.run(i, self.values.cols));
            let (lo, hi) = (shown_cols.partition_point(|&j| j < lo), shown_cols.partition_point(|&j| j < hi));
            let (row_lit, values) = (hover_row == Some(r), self.values.row(i));
            for (c, o) in out.iter_mut().enumerate().take(hi).skip(lo) {
                let j = shown_cols[c];
                if !holes.is_some_and(|m| m.hides(i, j)) {
                    *o = Some(pack(lit(
                        colour(self.colour_map, self.range, values[j]),
                        row_lit || hover_col == Some(c),
                    )));
                }
            }
        }
        // The hatching's two colours ((x + y) % 8 < 3 the light one), plain and lit.
        let (dark, light) = ([0.22, 0.23, 0.26], [0.32, 0.33, 0.36]);
        let hatch = [[pack(dark), pack(light)], [pack(lit(dark, true)), pack(lit(light, true))]];
        // Pixel rows repeat: a row equals the one above it in the same cell
        // (or the one 8 above, where the row's hatching shifts with y).
        let hatched: Vec<bool> = cells.chunks_exact(cols).map(|row| row.iter().any(Option::is_none)).collect();
        let width = self.width;
        // Where the hatching's phase alone differs from the row above, that
        // row is copied and only the masked runs are refilled, from a whole
        // hatched row per phase (y % 8) and lighting (plain, row lit).
        let hatch_rows: Vec<u32> = if hatched.iter().any(|&h| h) {
            (0..16)
                .flat_map(|at| {
                    let (row_lit, phase) = (at / 8 == 1, at % 8);
                    xs.iter().enumerate().map(move |(x, &(c, gap_x))| {
                        if gap_x {
                            background
                        } else {
                            hatch[usize::from(row_lit || hover_col == Some(c))][usize::from((x + phase) % 8 < 3)]
                        }
                    })
                })
                .collect()
        } else {
            Vec::new()
        };
        // Each shown column's pixels (first, one past the last).
        let mut col_span = vec![(width, 0); cols];
        for (x, &(c, _)) in xs.iter().enumerate() {
            col_span[c] = (col_span[c].0.min(x), x + 1);
        }
        for (y, &(r, gap_y)) in ys.iter().enumerate() {
            if gap_y {
                continue; // background already
            }
            let period = if hatched[r] { 8 } else { 1 };
            if y >= period && ys[y - period] == (r, gap_y) {
                let from = (y - period) * width;
                out.copy_within(from..from + width, y * width);
                continue;
            }
            let row_lit = hover_row == Some(r);
            let cells = &cells[r * cols..(r + 1) * cols];
            if y >= 1 && ys[y - 1] == (r, gap_y) {
                // The row above with the hatching moved on by one phase.
                out.copy_within((y - 1) * width..y * width, y * width);
                let phase_row = &hatch_rows[(usize::from(row_lit) * 8 + y % 8) * width..][..width];
                let mut c = 0;
                while c < cols {
                    if cells[c].is_some() {
                        c += 1;
                        continue;
                    }
                    let first = c;
                    while c < cols && cells[c].is_none() {
                        c += 1;
                    }
                    let (from, to) = (col_span[first].0, col_span[c - 1].1);
                    if from < to {
                        out[y * width + from..y * width + to].copy_from_slice(&phase_row[from..to]);
                    }
                }
                continue;
            }
            for (x, (px, &(c, gap_x))) in out[y * width..(y + 1) * width].iter_mut().zip(&xs).enumerate() {
                if gap_x {
                    continue;
                }
                *px = match cells[c] {
                    Some(colour) => colour,
                    None => hatch[usize::from(row_lit || hover_col == Some(c))][usize::from((x + y) % 8 < 3)],
                };
            }
        }
        out
    }
}

/// The cells under `pixels` pixels across `cells` cells ([`pixel_cells`]),
/// each once in order, and each pixel's as a place in that list with
/// whether the pixel is a gap.
fn shown_cells(pixels: usize, cells: usize) -> (Vec<usize>, Vec<(usize, bool)>) {
    let mut shown: Vec<usize> = Vec::new();
    let places = pixel_cells(pixels, cells)
        .into_iter()
        .map(|(k, gap)| {
            if shown.last() != Some(&k) {
                shown.push(k);
            }
            (shown.len() - 1, gap)
        })
        .collect();
    (shown, places)
}

/// Packed pixels as the RGBA8 bytes an `ImageData` takes.
pub fn as_bytes(pixels: &[u32]) -> &[u8] {
    bytemuck::cast_slice(pixels)
}

/// An sRGB colour in [0, 1] as an opaque RGBA8 pixel packed in a `u32`
/// (bytes R, G, B, A in memory order).
fn pack(c: [f32; 3]) -> u32 {
    u32::from_ne_bytes(rgba(c))
}

/// An sRGB colour in [0, 1] as opaque RGBA8.
fn rgba(c: [f32; 3]) -> [u8; 4] {
    [(c[0] * 255.0).round() as u8, (c[1] * 255.0).round() as u8, (c[2] * 255.0).round() as u8, 255]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-pixel definition the fast raster must equal, byte for byte.
    fn pixels_one_by_one(r: &Raster<'_>) -> Vec<u8> {
        let (rows, cols) = (r.values.rows, r.values.cols);
        let mut out = vec![0u8; r.width * r.height * 4];
        let (cell_w, cell_h) = (r.width as f32 / cols.max(1) as f32, r.height as f32 / rows.max(1) as f32);
        for y in 0..r.height {
            for x in 0..r.width {
                let mut c = BACKGROUND;
                if rows > 0 && cols > 0 {
                    let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
                    let j = ((px / cell_w) as usize).min(cols - 1);
                    let i = ((py / cell_h) as usize).min(rows - 1);
                    let gap = (cell_w >= 8.0 && px - j as f32 * cell_w < 1.0)
                        || (cell_h >= 8.0 && py - i as f32 * cell_h < 1.0);
                    if !gap {
                        c = if r.masked.is_some_and(|m| m.hides(i, j)) {
                            if (x + y) % 8 < 3 {
                                [0.32, 0.33, 0.36]
                            } else {
                                [0.22, 0.23, 0.26]
                            }
                        } else {
                            colour(r.colour_map, r.range, r.values.at(i, j))
                        };
                        if r.hover.is_some_and(|(h, k)| h == i || k == j) {
                            c = mix(c, [1.0; 3], 0.18);
                        }
                    }
                }
                out[(y * r.width + x) * 4..][..4].copy_from_slice(&rgba(c));
            }
        }
        out
    }

    #[test]
    fn range_reads_a_masks_runs_as_its_cells() {
        let values = Matrix::from_vec(9, 11, (0..99).map(|k| ((k * 37) % 23) as f32 - 11.0).collect());
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(1), Mask::Window(4), Mask::Window(0)] {
            for (row0, col0) in [(0, 0), (5, 1), (2, 9), (0, 6), (30, 2)] {
                let hidden = Hidden::Mask { mask, row0, col0 };
                let mut want: Option<(f32, f32)> = None;
                for i in 0..values.rows {
                    for j in 0..values.cols {
                        if !hidden.hides(i, j) {
                            let v = values.at(i, j);
                            want = Some(want.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))));
                        }
                    }
                }
                let want = want.unwrap_or((0.0, 0.0));
                assert_eq!(value_range(&values, Some(hidden)), want, "{mask:?} at ({row0}, {col0})");
            }
        }
    }

    #[test]
    fn the_cell_by_cell_raster_equals_the_pixel_by_pixel_definition() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
        };
        for &(rows, cols, width, height) in &[
            (5, 5, 40, 40),
            (17, 17, 300, 300),
            (9, 32, 257, 131),
            (1, 1, 3, 7),
            (3, 4, 0, 5),
            (40, 40, 532, 532),
            (128, 128, 532, 532),
            (7, 3, 64, 9),
            (128, 128, 500, 301),
            (30, 50, 531, 97),
            (12, 12, 200, 200),
            // More cells than pixels: across and down, down only, across only.
            (700, 700, 211, 197),
            (50, 7, 31, 40),
            (9, 400, 131, 60),
        ] {
            let values = Matrix::from_vec(rows, cols, (0..rows * cols).map(|_| next()).collect());
            let masked = Matrix::from_vec(
                rows,
                cols,
                (0..rows * cols).map(|at| if at % cols > at / cols { f32::NEG_INFINITY } else { 0.0 }).collect(),
            );
            // A mask with holes anywhere (the runs of masked cells are not a suffix).
            let holes = Matrix::from_vec(
                rows,
                cols,
                (0..rows * cols).map(|_| if next() > 0.5 { f32::NEG_INFINITY } else { 0.0 }).collect(),
            );
            for (map, masked, hover) in [
                (ColourMap::Sequential, Some(Hidden::Cells(&masked)), Some((1, 2))),
                (ColourMap::Diverging, None, None),
                (ColourMap::Sequential, Some(Hidden::Cells(&holes)), Some((rows / 2, cols - 1))),
                (ColourMap::Sequential, Some(Hidden::Cells(&holes)), None),
                (ColourMap::Sequential, Some(Hidden::mask(Mask::Causal)), Some((0, 0))),
                (ColourMap::Diverging, Some(Hidden::Mask { mask: Mask::Window(3), row0: 5, col0: 1 }), None),
                // A window cut right of the diagonal: rows before its first column are all masked.
                (ColourMap::Sequential, Some(Hidden::Mask { mask: Mask::Causal, row0: 2, col0: 9 }), Some((0, 1))),
                (ColourMap::Sequential, Some(Hidden::Mask { mask: Mask::Bidirectional, row0: 3, col0: 4 }), None),
            ] {
                let r =
                    Raster { values: values.view(), masked, colour_map: map, range: (-1.5, 1.7), width, height, hover };
                assert!(as_bytes(&r.pixels()) == pixels_one_by_one(&r), "{rows}×{cols} at {width}×{height}");
            }
        }
    }

    #[test]
    fn colour_maps_hit_their_end_points() {
        let to8 = |c: [f32; 3]| c.map(|v| (v * 255.0).round() as i32);
        let close = |a: [i32; 3], b: [i32; 3]| (0..3).all(|k| (a[k] - b[k]).abs() <= 5);
        assert!(close(to8(viridis(0.0)), [68, 1, 84]), "{:?}", to8(viridis(0.0)));
        assert!(close(to8(viridis(1.0)), [253, 231, 37]), "{:?}", to8(viridis(1.0)));
        assert!(close(to8(diverging(0.0)), [247, 247, 247]));
        assert!(close(to8(diverging(-1.0)), [84, 39, 136]));
        assert!(close(to8(diverging(1.0)), [179, 88, 6]));
    }

    /// A window cut from a head's matrix hides what the mask hid there.
    #[test]
    fn a_masks_window_hides_the_cells_the_whole_matrix_hid() {
        let t = 11;
        for mask in [Mask::Causal, Mask::Bidirectional, Mask::Window(4)] {
            let whole = Matrix::from_vec(
                t,
                t,
                (0..t * t).map(|at| if mask.allows(at / t, at % t) { 0.5 } else { f32::NEG_INFINITY }).collect(),
            );
            for (row0, col0, rows, cols) in [(0, 0, t, t), (3, 2, 5, 7), (10, 0, 1, 11), (0, 9, 11, 2)] {
                let data = (row0..row0 + rows).flat_map(|r| whole.row(r)[col0..col0 + cols].to_vec()).collect();
                let cut = Matrix::from_vec(rows, cols, data);
                for i in 0..rows {
                    for j in 0..cols {
                        assert_eq!(
                            Hidden::Mask { mask, row0, col0 }.hides(i, j),
                            Hidden::Cells(&cut).hides(i, j),
                            "{mask:?} window at ({row0}, {col0}), cell ({i}, {j})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn range_skips_masked_cells_and_pixels_hatch_them() {
        let values = Matrix::from_vec(2, 2, vec![1.0, 9.0, -2.0, 3.0]);
        let masked = Matrix::from_vec(2, 2, vec![1.0, f32::NEG_INFINITY, -2.0, 3.0]);
        assert_eq!(value_range(&values, Some(Hidden::Cells(&masked))), (-2.0, 3.0));
        assert_eq!(value_range(&values, Some(Hidden::mask(Mask::Causal))), (-2.0, 3.0), "the mask hides the same cell");
        assert_eq!(value_range(&values, None), (-2.0, 9.0));
        let raster = Raster {
            values: values.view(),
            masked: Some(Hidden::mask(Mask::Causal)),
            colour_map: ColourMap::Diverging,
            range: (-2.0, 3.0),
            width: 20,
            height: 20,
            hover: None,
        };
        let pixels = raster.pixels();
        let px = as_bytes(&pixels);
        let at = |x: usize, y: usize| [px[(y * 20 + x) * 4], px[(y * 20 + x) * 4 + 1], px[(y * 20 + x) * 4 + 2]];
        let hatch = [[56, 59, 66], [82, 84, 92]];
        assert!(hatch.contains(&at(15, 5)), "masked cell is hatched: {:?}", at(15, 5));
        assert_eq!(at(15, 15), [179, 88, 6], "3 is the largest |value|: the far orange");
        assert_eq!(at(0, 0), [31, 33, 38], "the 1-pixel gap between large cells is background");
    }

    /// A map shrunk to a tile smaller than its cells, drawn from the cells
    /// `sampled_cells` picks (the hidden ones marked −∞), has the very
    /// pixels of the whole matrix drawn at that size.
    #[test]
    fn a_matrix_of_the_sampled_cells_draws_the_whole_ones_pixels() {
        for (t, (width, height)) in [(97, (40, 33)), (64, (63, 63)), (300, (17, 90)), (33, (32, 1))] {
            let whole = Matrix::from_vec(t, t, (0..t * t).map(|k| ((k * 37) % 101) as f32 / 100.0).collect());
            for mask in [Mask::Causal, Mask::Window(5), Mask::Bidirectional] {
                let (rows, cols) = sampled_cells(t, t, width, height).expect("fewer pixels than cells");
                assert_eq!((rows.len(), cols.len()), (height, width));
                let pick = |f: &dyn Fn(usize, usize) -> f32| {
                    Matrix::from_vec(
                        height,
                        width,
                        rows.iter().flat_map(|&i| cols.iter().map(move |&j| f(i, j))).collect(),
                    )
                };
                let values = pick(&|i, j| whole.at(i, j));
                let hidden = pick(&|i, j| if mask.allows(i, j) { 0.0 } else { f32::NEG_INFINITY });
                let raster = |values: &Matrix, masked| {
                    Raster {
                        values: values.view(),
                        masked: Some(masked),
                        colour_map: ColourMap::Sequential,
                        range: (0.0, 1.0),
                        width,
                        height,
                        hover: None,
                    }
                    .pixels()
                };
                assert_eq!(
                    raster(&values, Hidden::Cells(&hidden)),
                    raster(&whole, Hidden::mask(mask)),
                    "T = {t} at {width}×{height}, {mask:?}"
                );
            }
        }
        assert_eq!(sampled_cells(10, 10, 10, 4), None, "as many pixels as cells across");
        assert_eq!(sampled_cells(10, 10, 0, 4), None);
    }
}

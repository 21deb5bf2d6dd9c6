//! Layout arithmetic for the page's maps, apart from the browser so native
//! tests reach it: where each tile of a canvas goes, which cell a pointer is
//! over, how the focused cell moves under the arrow keys, the device-pixel
//! size of a canvas box. Pixels are device pixels unless a name says `css`.

/// The model view's shape: layers (rows) × query heads (columns), and how
/// many query heads share one KV head (1: full multi-head attention).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridShape {
    pub layers: usize,
    pub heads: usize,
    pub kv_group: usize,
}

impl GridShape {
    /// Whether heads are grouped on shared KV heads (more than one group of more than one head).
    pub fn grouped(self) -> bool {
        self.kv_group > 1 && self.kv_group < self.heads
    }

    /// Gaps between tiles in tile sides: a thin one inside a KV group, a
    /// wide one between groups, so the heads sharing a KV head sit together.
    fn gap_before(self, head: usize) -> f32 {
        match head {
            0 => 0.0,
            h if self.grouped() && h % self.kv_group == 0 => GAP_GROUP,
            _ if self.grouped() => GAP_IN_GROUP,
            _ => GAP,
        }
    }

    /// Each column's left edge and the whole width, in tile sides.
    fn columns(self) -> (Vec<f32>, f32) {
        let mut x = 0.0;
        let lefts = (0..self.heads)
            .map(|h| {
                x += self.gap_before(h);
                let left = x;
                x += 1.0;
                left
            })
            .collect();
        (lefts, x)
    }

    /// The whole height in tile sides.
    fn height(self) -> f32 {
        self.layers as f32 + GAP * self.layers.saturating_sub(1) as f32
    }

    /// Width ÷ height of the grid, for the canvas's aspect ratio (so the tiles fill it).
    pub fn aspect(self) -> f32 {
        if self.layers == 0 || self.heads == 0 {
            return 4.0 / 3.0;
        }
        self.columns().1 / self.height()
    }

    /// Each head's column as (left, width) fractions of the grid's width (for labels over the canvas).
    pub fn column_fractions(self) -> Vec<(f32, f32)> {
        let (lefts, width) = self.columns();
        lefts.into_iter().map(|x| (x / width, 1.0 / width)).collect()
    }

    /// Each layer's row as (top, height) fractions of the grid's height.
    pub fn row_fractions(self) -> Vec<(f32, f32)> {
        let height = self.height();
        (0..self.layers).map(|l| (l as f32 * (1.0 + GAP) / height, 1.0 / height)).collect()
    }
}

/// Gaps between the model view's tiles, in tile sides: between layers and
/// ungrouped heads, inside a KV group, and between KV groups.
const GAP: f32 = 0.15;
const GAP_IN_GROUP: f32 = 0.06;
const GAP_GROUP: f32 = 0.45;

/// The model view's tiles: `layers` rows × `heads` columns of square maps
/// with gaps (wider between KV groups), as `[x, y, width, height]` in pixels
/// of a `size` canvas, layer by layer (tile `layer · heads + head`).
pub fn grid_cells(size: (u32, u32), shape: GridShape) -> Vec<[f32; 4]> {
    if shape.layers == 0 || shape.heads == 0 {
        return Vec::new();
    }
    let (lefts, width) = shape.columns();
    let side = (size.0 as f32 / width).min(size.1 as f32 / shape.height()).max(1.0);
    (0..shape.layers)
        .flat_map(|l| {
            let top = l as f32 * (1.0 + GAP) * side;
            lefts.iter().map(move |&x| [x * side, top, side, side]).collect::<Vec<_>>()
        })
        .collect()
}

/// The (layer, head) whose tile holds pixel `(x, y)` of a `size` canvas, if any (gaps hold none).
pub fn grid_cell_at(size: (u32, u32), shape: GridShape, (x, y): (f32, f32)) -> Option<(usize, usize)> {
    let cells = grid_cells(size, shape);
    let i = cells.iter().position(|&[cx, cy, w, h]| x >= cx && x < cx + w && y >= cy && y < cy + h)?;
    Some((i / shape.heads, i % shape.heads))
}

/// The (row, column) of a `rows × cols` map filling a `css` box under the
/// pointer at `(x, y)` (CSS pixels from the box's corner), if inside.
pub fn cell_at((rows, cols): (usize, usize), css: (f64, f64), (x, y): (f64, f64)) -> Option<(usize, usize)> {
    let (w, h) = css;
    if rows == 0 || cols == 0 || w <= 0.0 || h <= 0.0 || x < 0.0 || y < 0.0 {
        return None;
    }
    let (row, col) = (((y / h) * rows as f64) as usize, ((x / w) * cols as f64) as usize);
    (row < rows && col < cols).then_some((row, col))
}

/// The part of a `rows × cols` map a zoomed heatmap shows: `rows × cols`
/// cells from (`row0`, `col0`). Cells are named in the whole map's
/// coordinates everywhere else; only drawing and pointing use the window's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MapWindow {
    pub row0: usize,
    pub col0: usize,
    pub rows: usize,
    pub cols: usize,
}

impl MapWindow {
    /// The fewest cells a side zooms in to.
    pub const MIN_SIDE: usize = 4;

    /// The whole map.
    pub fn full((rows, cols): (usize, usize)) -> Self {
        Self { row0: 0, col0: 0, rows, cols }
    }

    pub fn is_full(self, dims: (usize, usize)) -> bool {
        self == Self::full(dims)
    }

    /// Kept inside a map of `dims` (which may have grown or shrunk since), never empty unless the map is.
    pub fn clamped(self, (rows, cols): (usize, usize)) -> Self {
        let fit = |start: usize, len: usize, total: usize| {
            let len = len.clamp(1.min(total), total);
            (start.min(total - len), len)
        };
        let (row0, rows) = fit(self.row0, self.rows, rows);
        let (col0, cols) = fit(self.col0, self.cols, cols);
        Self { row0, col0, rows, cols }
    }

    /// Zoomed by `factor` (> 1 in, < 1 out) about `anchor` (a cell of the map), which stays
    /// where it was in the window; at least [`Self::MIN_SIDE`] cells a side (or the map's).
    pub fn zoomed(self, dims: (usize, usize), factor: f64, anchor: (usize, usize)) -> Self {
        let side = |len: usize, total: usize| {
            let want = (len as f64 / factor.max(1e-3)).round() as usize;
            want.clamp(Self::MIN_SIDE.min(total), total)
        };
        let start = |start: usize, len: usize, new_len: usize, at: usize| {
            // The anchor's fraction of the way across the old window, kept in the new one.
            let frac = if len == 0 { 0.5 } else { (at.saturating_sub(start) as f64 + 0.5) / len as f64 };
            (at as f64 + 0.5 - frac * new_len as f64).round().max(0.0) as usize
        };
        let (rows, cols) = (side(self.rows, dims.0), side(self.cols, dims.1));
        Self {
            row0: start(self.row0, self.rows, rows, anchor.0),
            col0: start(self.col0, self.cols, cols, anchor.1),
            rows,
            cols,
        }
        .clamped(dims)
    }

    /// Moved by (`d_rows`, `d_cols`) cells, kept inside the map.
    pub fn panned(self, dims: (usize, usize), (d_rows, d_cols): (isize, isize)) -> Self {
        let shift = |start: usize, by: isize| start.saturating_add_signed(by);
        Self { row0: shift(self.row0, d_rows), col0: shift(self.col0, d_cols), ..self }.clamped(dims)
    }

    /// Moved the least that brings `cell` inside.
    pub fn following(self, dims: (usize, usize), (row, col): (usize, usize)) -> Self {
        let start = |start: usize, len: usize, at: usize| {
            if at < start {
                at
            } else if at >= start + len {
                at + 1 - len
            } else {
                start
            }
        };
        Self { row0: start(self.row0, self.rows, row), col0: start(self.col0, self.cols, col), ..self }.clamped(dims)
    }

    /// A cell of the map in the window's coordinates, if the window shows it.
    pub fn to_local(self, (row, col): (usize, usize)) -> Option<(usize, usize)> {
        let (r, c) = (row.checked_sub(self.row0)?, col.checked_sub(self.col0)?);
        (r < self.rows && c < self.cols).then_some((r, c))
    }

    /// A cell of the window in the map's coordinates.
    pub fn to_map(self, (row, col): (usize, usize)) -> (usize, usize) {
        (self.row0 + row, self.col0 + col)
    }
}

/// A key's move of the focused cell of a `rows × cols` map (from the top
/// left when none is focused); `None` for keys that do not move it.
pub fn move_cell(from: Option<(usize, usize)>, key: &str, (rows, cols): (usize, usize)) -> Option<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return None;
    }
    let (row, col) = from.map_or((0, 0), |(r, c)| (r.min(rows - 1), c.min(cols - 1)));
    Some(match key {
        "ArrowUp" => (row.saturating_sub(1), col),
        "ArrowDown" => ((row + 1).min(rows - 1), col),
        "ArrowLeft" => (row, col.saturating_sub(1)),
        "ArrowRight" => (row, (col + 1).min(cols - 1)),
        _ => return None,
    })
}

/// The query row `by` rows from `from` (from the first row moving down, or
/// the last moving up, when none is focused), kept inside `0..t`.
pub fn move_row(from: Option<usize>, by: isize, t: usize) -> Option<usize> {
    if t == 0 {
        return None;
    }
    let start = from.map_or(if by > 0 { -1 } else { t as isize }, |r| r as isize);
    Some((start + by).clamp(0, t as isize - 1) as usize)
}

/// How big the axis labels of a map may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LabelSizes {
    /// The largest font (CSS pixels): the page's type, or a projector's.
    pub max_px: u32,
    /// The smallest font still shown; below it the labels hide (the readout names the cell).
    pub min_px: u32,
}

impl LabelSizes {
    /// The learner's page: 13 px at most; on a narrow (phone) screen never under 11 px.
    pub fn page(narrow: bool) -> Self {
        Self { max_px: 13, min_px: if narrow { 11 } else { 8 } }
    }

    /// Presenter mode: large type for the room, never under 11 px.
    pub const PRESENT: Self = Self { max_px: 22, min_px: 11 };
}

/// The axis labels' font size for `n` labels along `length_px` CSS pixels of
/// a map (each label gets `length_px / n`, and its type fills 80 % of that),
/// or `None` when it would fall under `sizes.min_px` (the labels are hidden).
pub fn label_font_px(n: usize, length_px: f64, sizes: LabelSizes) -> Option<u32> {
    if n == 0 {
        return Some(sizes.max_px);
    }
    let fits = (0.8 * length_px / n as f64).floor();
    let px = if fits.is_finite() { fits.min(f64::from(sizes.max_px)) as u32 } else { 0 };
    (px >= sizes.min_px).then_some(px)
}

/// Where the block view's four maps sit on its canvas (x, y, width, height as
/// fractions): the residual norms, the ln₁ input and output strips, the MLP strip.
pub const BLOCK_TILES: [[f32; 4]; 4] =
    [[0.0, 0.0, 1.0, 0.56], [0.0, 0.64, 1.0, 0.08], [0.0, 0.77, 1.0, 0.08], [0.0, 0.90, 1.0, 0.10]];

/// The cell (point of the residual stream, token) of the block view's norms
/// map under the pointer at `(x, y)`, as fractions of the canvas.
pub fn block_norm_cell_at(points: usize, t: usize, (x, y): (f32, f32)) -> Option<(usize, usize)> {
    let [x0, y0, w, h] = BLOCK_TILES[0];
    let (x, y) = (x - x0, y - y0);
    if t == 0 || points == 0 || x < 0.0 || y < 0.0 || x >= w || y >= h {
        return None;
    }
    let (point, token) = (((y / h) * points as f32) as usize, ((x / w) * t as f32) as usize);
    (point < points && token < t).then_some((point, token))
}

/// A tile given as fractions of a canvas, in whole pixels of a `size` canvas: (x, y, width, height).
pub fn place([x, y, w, h]: [f32; 4], size: (u32, u32)) -> (usize, usize, usize, usize) {
    let (sw, sh) = (size.0 as f32, size.1 as f32);
    ((x * sw) as usize, (y * sh) as usize, (w * sw) as usize, (h * sh) as usize)
}

/// A tile given as fractions of a canvas, in pixels of a `size` canvas.
pub fn to_pixels([x, y, w, h]: [f32; 4], size: (u32, u32)) -> [f32; 4] {
    let (sw, sh) = (size.0 as f32, size.1 as f32);
    [x * sw, y * sh, w * sw, h * sh]
}

/// A tile given in pixels of a `size` canvas, as fractions of it.
pub fn to_fractions([x, y, w, h]: [f32; 4], size: (u32, u32)) -> [f32; 4] {
    let (sw, sh) = (size.0.max(1) as f32, size.1.max(1) as f32);
    [x / sw, y / sh, w / sw, h / sh]
}

/// The device-pixel size of a canvas box `css` CSS pixels wide and high at
/// `dpr` device pixels per CSS pixel (at least 1 × 1).
pub fn pixel_size(css: (i32, i32), dpr: f64) -> (u32, u32) {
    let dpr = if dpr.is_finite() && dpr > 0.0 { dpr } else { 1.0 };
    let side = |v: i32| ((v.max(0) as f64 * dpr).round() as u32).max(1);
    (side(css.0), side(css.1))
}

/// Up to this many tokens the page's token strip shows every chip; a longer text shows
/// its first and last [`EDGE_CHIPS`] and, around a hovered row between
/// them, [`FOCUS_CHIPS`] either side, with the runs it leaves out as gaps.
/// (2,048 chips were one task of ~125 ms to build and ~100 ms of layout at
/// each change, in headless Chromium; 161 chips at most keep the strip
/// within about a screen of the page's text column.)
pub const ALL_CHIPS: usize = 256;
const EDGE_CHIPS: usize = 64;
const FOCUS_CHIPS: usize = 16;

/// A run of the strip: tokens shown as chips, or tokens left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChipRun {
    Chips(std::ops::Range<usize>),
    Gap(std::ops::Range<usize>),
}

/// The runs of a strip of `n` tokens with a window of chips around row
/// `focus` (see [`ALL_CHIPS`]): in order, covering `0..n` once.
pub fn chip_runs(n: usize, focus: Option<usize>) -> Vec<ChipRun> {
    if n <= ALL_CHIPS {
        return vec![ChipRun::Chips(0..n)];
    }
    let window = focus.filter(|&f| f < n).map(|f| f.saturating_sub(FOCUS_CHIPS)..(f + FOCUS_CHIPS + 1).min(n));
    let shown = [Some(0..EDGE_CHIPS), window, Some(n - EDGE_CHIPS..n)];
    let mut runs: Vec<ChipRun> = Vec::new();
    let mut next = 0;
    for range in shown.into_iter().flatten() {
        let (start, end) = (range.start.max(next), range.end.max(next));
        if start > next {
            runs.push(ChipRun::Gap(next..start));
        }
        match runs.last_mut() {
            Some(ChipRun::Chips(last)) if last.end == start => last.end = end,
            _ if end > start => runs.push(ChipRun::Chips(start..end)),
            _ => {}
        }
        next = next.max(end);
    }
    runs
}

/// Where a strip of `n` tokens centres its window when row `hovered` is
/// hovered and the window was centred on `kept`: where it was while the
/// hovered row's chip is shown (a chip hovered at the window's edge must not
/// move the strip under the pointer), else on the hovered row.
pub fn chip_window(n: usize, hovered: Option<usize>, kept: Option<usize>) -> Option<usize> {
    let shown = |row: usize| chip_runs(n, kept).iter().any(|r| matches!(r, ChipRun::Chips(c) if c.contains(&row)));
    match hovered {
        Some(row) if !shown(row) => Some(row),
        _ => kept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn a_hovered_chip_already_shown_keeps_the_strip_where_it_is() {
        let n = 2048;
        // Row 1000 is in the gap: the window opens on it.
        let w = chip_window(n, Some(1000), None);
        assert_eq!(w, Some(1000));
        // The chip at the window's edge, then the head's and the tail's, hovered: no move.
        for row in [1000 + FOCUS_CHIPS, 1000 - FOCUS_CHIPS, 3, n - 1] {
            assert_eq!(chip_window(n, Some(row), w), w, "row {row}");
        }
        // Nothing hovered: the window stays.
        assert_eq!(chip_window(n, None, w), w);
        // A row in a gap again: the window moves there.
        assert_eq!(chip_window(n, Some(1500), w), Some(1500));
        assert_eq!(chip_window(200, Some(100), None), None, "a short strip has no window");
    }

    #[test]
    fn a_long_strip_covers_every_token_once_in_chips_and_gaps() {
        for (n, focus) in [
            (0, None),
            (5, Some(2)),
            (512, Some(300)),
            (513, None),
            (2048, Some(1000)),
            (2048, Some(200)),
            (2048, Some(1840)),
            (600, Some(300)),
            (2048, Some(5000)),
        ] {
            let runs = chip_runs(n, focus);
            let mut next = 0;
            for run in &runs {
                let (ChipRun::Chips(r) | ChipRun::Gap(r)) = run;
                assert_eq!(r.start, next, "{n} tokens, focus {focus:?}: {runs:?}");
                assert!(!r.is_empty() || n == 0, "{runs:?}");
                next = r.end;
            }
            assert_eq!(next, n);
            let chips: usize = runs.iter().map(|r| if let ChipRun::Chips(r) = r { r.len() } else { 0 }).sum();
            assert!(chips == n || chips <= 2 * EDGE_CHIPS + 2 * FOCUS_CHIPS + 1, "{n}: {chips} chips");
            // The hovered row has its chip.
            if let Some(f) = focus.filter(|&f| f < n) {
                assert!(runs.iter().any(|r| matches!(r, ChipRun::Chips(c) if c.contains(&f))), "{n}, {f}: {runs:?}");
            }
        }
    }

    fn shape(layers: usize, heads: usize, kv_group: usize) -> GridShape {
        GridShape { layers, heads, kv_group }
    }

    #[test]
    fn grid_tiles_are_square_and_inside_the_canvas() {
        for (n_layer, n_head, group) in [(1, 1, 1), (2, 4, 2), (12, 12, 1), (30, 9, 3), (3, 1, 1), (4, 8, 8)] {
            let size = (800, 600);
            let cells = grid_cells(size, shape(n_layer, n_head, group));
            assert_eq!(cells.len(), n_layer * n_head);
            for &[x, y, w, h] in &cells {
                assert_eq!(w, h, "square tiles");
                assert!(x >= 0.0 && y >= 0.0 && x + w <= 800.5 && y + h <= 600.5, "{n_layer}×{n_head}: {x},{y},{w}");
            }
        }
        assert!(grid_cells((100, 100), shape(0, 4, 1)).is_empty());
    }

    #[test]
    fn a_canvas_of_the_grids_aspect_is_filled_edge_to_edge() {
        let s = shape(30, 9, 3);
        let width = 420u32;
        let height = (width as f32 / s.aspect()).round() as u32;
        let cells = grid_cells((width, height), s);
        let [x, y, w, h] = cells[cells.len() - 1];
        assert!((x + w - width as f32).abs() < 1.0 && (y + h - height as f32).abs() < 1.0, "{x}+{w}, {y}+{h}");
        let cols = s.column_fractions();
        assert!((cols[8].0 + cols[8].1 - 1.0).abs() < 1e-5);
        let rows = s.row_fractions();
        assert!((rows[29].0 + rows[29].1 - 1.0).abs() < 1e-5);
    }

    #[test]
    fn heads_sharing_a_kv_head_sit_closer_than_heads_of_different_groups() {
        let cells = grid_cells((900, 3000), shape(30, 9, 3));
        let gap = |a: usize, b: usize| cells[b][0] - (cells[a][0] + cells[a][2]);
        assert!(gap(0, 1) < gap(2, 3) / 3.0, "inside {} vs between {}", gap(0, 1), gap(2, 3));
        assert!((gap(0, 1) - gap(1, 2)).abs() < 1e-3 && (gap(2, 3) - gap(5, 6)).abs() < 1e-3);
        // Full multi-head and one shared KV head: even gaps.
        for s in [shape(2, 4, 1), shape(2, 4, 4)] {
            let c = grid_cells((400, 200), s);
            let g = |a: usize| c[a + 1][0] - (c[a][0] + c[a][2]);
            assert!((g(0) - g(2)).abs() < 1e-3 && g(0) > 0.0);
        }
    }

    #[test]
    fn a_click_in_a_tile_selects_its_layer_and_head_and_a_gap_selects_none() {
        let size = (400, 200);
        let s = shape(2, 4, 2);
        let cells = grid_cells(size, s);
        for (i, &[x, y, w, h]) in cells.iter().enumerate() {
            assert_eq!(grid_cell_at(size, s, (x + w / 2.0, y + h / 2.0)), Some((i / 4, i % 4)));
        }
        let [x, _, w, _] = cells[1];
        assert_eq!(grid_cell_at(size, s, (x + w + 1.0, 10.0)), None, "the gap after tile 1 (between groups)");
        assert_eq!(grid_cell_at(size, shape(0, 0, 1), (1.0, 1.0)), None);
    }

    #[test]
    fn zooming_keeps_the_anchor_in_place_and_stays_inside_the_map() {
        let dims = (1000, 1000);
        let all = MapWindow::full(dims);
        let w = all.zoomed(dims, 4.0, (500, 250));
        assert_eq!((w.rows, w.cols), (250, 250));
        assert!(w.to_local((500, 250)).is_some(), "{w:?}");
        let (r, c) = w.to_local((500, 250)).unwrap();
        assert!((r as i64 - 125).abs() <= 1 && (c as i64 - 62).abs() <= 1, "the anchor keeps its place: {r}, {c}");
        // At the corner the window stops at the edge.
        let corner = all.zoomed(dims, 10.0, (999, 0));
        assert_eq!((corner.row0 + corner.rows, corner.col0), (1000, 0));
        // Never under MIN_SIDE, never past the map; zooming out comes back to the whole map.
        let tiny = all.zoomed(dims, 1e6, (3, 3));
        assert_eq!((tiny.rows, tiny.cols), (MapWindow::MIN_SIDE, MapWindow::MIN_SIDE));
        assert!(w.zoomed(dims, 0.01, (500, 250)).is_full(dims));
        // A map smaller than MIN_SIDE zooms to itself.
        assert!(MapWindow::full((2, 3)).zoomed((2, 3), 8.0, (1, 1)).is_full((2, 3)));
    }

    #[test]
    fn panning_following_and_clamping_keep_the_window_inside() {
        let dims = (100, 64);
        let w = MapWindow { row0: 10, col0: 10, rows: 20, cols: 16 };
        assert_eq!(w.panned(dims, (-50, 5)), MapWindow { row0: 0, col0: 15, ..w });
        assert_eq!(w.panned(dims, (500, 500)), MapWindow { row0: 80, col0: 48, ..w });
        assert_eq!(w.following(dims, (35, 12)), MapWindow { row0: 16, ..w });
        assert_eq!(w.following(dims, (5, 12)), MapWindow { row0: 5, ..w });
        assert_eq!(w.following(dims, (15, 12)), w, "already inside");
        // The map shrank under the window (a shorter text): still inside, never empty.
        let small = w.clamped((12, 64));
        assert_eq!((small.row0, small.rows), (0, 12));
        assert_eq!(MapWindow::full((0, 0)).clamped((0, 0)), MapWindow::full((0, 0)));
        assert_eq!(w.to_local((10, 10)), Some((0, 0)));
        assert_eq!(w.to_local((30, 10)), None);
        assert_eq!(w.to_map((1, 2)), (11, 12));
    }

    #[test]
    fn cell_at_maps_the_box_onto_rows_and_columns() {
        assert_eq!(cell_at((4, 8), (400.0, 200.0), (0.0, 0.0)), Some((0, 0)));
        assert_eq!(cell_at((4, 8), (400.0, 200.0), (399.0, 199.0)), Some((3, 7)));
        assert_eq!(cell_at((4, 8), (400.0, 200.0), (400.0, 10.0)), None, "right edge");
        assert_eq!(cell_at((4, 8), (400.0, 200.0), (-1.0, 10.0)), None);
        assert_eq!(cell_at((0, 8), (400.0, 200.0), (1.0, 1.0)), None, "no rows");
        assert_eq!(cell_at((4, 8), (0.0, 200.0), (1.0, 1.0)), None, "a box not laid out");
    }

    #[test]
    fn arrow_keys_move_the_focus_and_stop_at_the_edges() {
        let dims = (3, 5);
        assert_eq!(move_cell(None, "ArrowDown", dims), Some((1, 0)));
        assert_eq!(move_cell(Some((0, 0)), "ArrowUp", dims), Some((0, 0)));
        assert_eq!(move_cell(Some((2, 4)), "ArrowDown", dims), Some((2, 4)));
        assert_eq!(move_cell(Some((2, 4)), "ArrowRight", dims), Some((2, 4)));
        assert_eq!(move_cell(Some((1, 1)), "ArrowLeft", dims), Some((1, 0)));
        assert_eq!(move_cell(Some((9, 9)), "ArrowUp", dims), Some((1, 4)), "a stale focus is clamped first");
        assert_eq!(move_cell(Some((1, 1)), "x", dims), None);
        assert_eq!(move_cell(None, "ArrowDown", (0, 0)), None);
    }

    #[test]
    fn moving_the_row_starts_at_an_end_and_clamps() {
        assert_eq!(move_row(None, 1, 5), Some(0));
        assert_eq!(move_row(None, -1, 5), Some(4));
        assert_eq!(move_row(Some(4), 1, 5), Some(4));
        assert_eq!(move_row(Some(0), -1, 5), Some(0));
        assert_eq!(move_row(Some(2), 1, 5), Some(3));
        assert_eq!(move_row(Some(2), 1, 0), None);
    }

    #[test]
    fn labels_shrink_with_their_number_then_hide() {
        let page = LabelSizes::page(false);
        assert_eq!(label_font_px(5, 560.0, page), Some(13));
        assert_eq!(label_font_px(40, 560.0, page), Some(11));
        assert_eq!(label_font_px(56, 560.0, page), Some(8));
        assert_eq!(label_font_px(57, 560.0, page), None);
        let sizes: Vec<u32> = (0..=60).filter_map(|n| label_font_px(n, 560.0, page)).collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "never grows with more labels");
        // A phone never shows labels under 11 px: it hides them instead.
        let phone = LabelSizes::page(true);
        assert!((0..200).filter_map(|n| label_font_px(n, 300.0, phone)).all(|px| px >= 11));
        assert_eq!(label_font_px(30, 300.0, phone), None);
        // A projector: big type while it fits.
        assert_eq!(label_font_px(10, 700.0, LabelSizes::PRESENT), Some(22));
        assert_eq!(label_font_px(30, 700.0, LabelSizes::PRESENT), Some(18));
        assert_eq!(label_font_px(3, f64::NAN, page), None);
    }

    #[test]
    fn block_tiles_do_not_overlap_and_the_norms_map_reads_its_cells() {
        for pair in BLOCK_TILES.windows(2) {
            assert!(pair[0][1] + pair[0][3] <= pair[1][1], "tiles stacked top to bottom");
        }
        assert!(BLOCK_TILES.iter().all(|t| t[1] + t[3] <= 1.0));
        let h = BLOCK_TILES[0][3];
        assert_eq!(block_norm_cell_at(5, 10, (0.0, 0.0)), Some((0, 0)));
        assert_eq!(block_norm_cell_at(5, 10, (0.999, h * 0.999)), Some((4, 9)));
        assert_eq!(block_norm_cell_at(5, 10, (0.5, h + 0.01)), None, "below the norms map");
        assert_eq!(block_norm_cell_at(5, 0, (0.5, 0.1)), None);
    }

    #[test]
    fn fractions_and_pixels_round_trip() {
        let size = (640, 480);
        let tile = [0.25, 0.5, 0.5, 0.25];
        assert_eq!(to_pixels(tile, size), [160.0, 240.0, 320.0, 120.0]);
        assert_eq!(to_fractions(to_pixels(tile, size), size), tile);
        assert_eq!(place(tile, size), (160, 240, 320, 120));
    }

    #[test]
    fn pixel_size_scales_by_the_device_ratio_and_is_never_empty() {
        assert_eq!(pixel_size((300, 150), 2.0), (600, 300));
        assert_eq!(pixel_size((0, -5), 2.0), (1, 1));
        assert_eq!(pixel_size((100, 100), f64::NAN), (100, 100));
    }
}

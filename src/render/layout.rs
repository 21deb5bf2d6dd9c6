//! Layout arithmetic for the page's maps, apart from the browser so native
//! tests reach it: where each tile of a canvas goes, which cell a pointer is
//! over, how the focused cell moves under the arrow keys, the device-pixel
//! size of a canvas box. Pixels are device pixels unless a name says `css`.

/// Gap between the model view's tiles, in device pixels.
const GRID_GAP: f32 = 6.0;

/// The model view's tiles: `n_layer` rows × `n_head` columns of square maps
/// with gaps, as `[x, y, width, height]` in pixels of a `size` canvas, layer
/// by layer (tile `layer · n_head + head`).
pub fn grid_cells(size: (u32, u32), n_layer: usize, n_head: usize) -> Vec<[f32; 4]> {
    if n_layer == 0 || n_head == 0 {
        return Vec::new();
    }
    let (w, h) = (size.0 as f32, size.1 as f32);
    let cell_w = (w - GRID_GAP * (n_head as f32 - 1.0)) / n_head as f32;
    let cell_h = (h - GRID_GAP * (n_layer as f32 - 1.0)) / n_layer as f32;
    let side = cell_w.min(cell_h).max(1.0);
    (0..n_layer)
        .flat_map(|l| {
            (0..n_head).map(move |hd| [hd as f32 * (side + GRID_GAP), l as f32 * (side + GRID_GAP), side, side])
        })
        .collect()
}

/// The (layer, head) whose tile holds pixel `(x, y)` of a `size` canvas, if any (gaps hold none).
pub fn grid_cell_at(size: (u32, u32), n_layer: usize, n_head: usize, (x, y): (f32, f32)) -> Option<(usize, usize)> {
    let cells = grid_cells(size, n_layer, n_head);
    let i = cells.iter().position(|&[cx, cy, w, h]| x >= cx && x < cx + w && y >= cy && y < cy + h)?;
    Some((i / n_head, i % n_head))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_tiles_are_square_and_inside_the_canvas() {
        for (n_layer, n_head) in [(1, 1), (2, 4), (12, 12), (30, 9), (3, 1)] {
            let size = (800, 600);
            let cells = grid_cells(size, n_layer, n_head);
            assert_eq!(cells.len(), n_layer * n_head);
            for &[x, y, w, h] in &cells {
                assert_eq!(w, h, "square tiles");
                assert!(x >= 0.0 && y >= 0.0 && x + w <= 800.5 && y + h <= 600.5, "{n_layer}×{n_head}: {x},{y},{w}");
            }
        }
        assert!(grid_cells((100, 100), 0, 4).is_empty());
    }

    #[test]
    fn a_click_in_a_tile_selects_its_layer_and_head_and_a_gap_selects_none() {
        let size = (400, 200);
        let cells = grid_cells(size, 2, 4);
        for (i, &[x, y, w, h]) in cells.iter().enumerate() {
            assert_eq!(grid_cell_at(size, 2, 4, (x + w / 2.0, y + h / 2.0)), Some((i / 4, i % 4)));
        }
        let [x, _, w, _] = cells[0];
        assert_eq!(grid_cell_at(size, 2, 4, (x + w + 1.0, 10.0)), None, "the gap after tile 0");
        assert_eq!(grid_cell_at(size, 0, 0, (1.0, 1.0)), None);
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

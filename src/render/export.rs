//! Figures for lesson authors: one stage matrix as a standalone SVG (a vector
//! heatmap with its labels, title, legend and every value in a tooltip), as
//! CSV and as JSON, from the numbers the model computed (read back for the
//! export). The colours are the heatmap's own maps (`raster`).

use serde_json::json;

use super::heatmap::ColourMap;
use super::raster::colour;
use crate::engine::Matrix;
use crate::escape;

/// What a figure shows.
#[derive(Debug, Clone)]
pub struct Figure<'a> {
    pub title: String,
    pub caption: String,
    pub values: &'a Matrix,
    /// Cells drawn as masked (−∞ in the matrix also counts).
    pub masked: Option<&'a Matrix>,
    pub colour_map: ColourMap,
    pub range: (f32, f32),
    pub row_labels: Vec<String>,
    pub col_labels: Vec<String>,
}

fn hex(c: [f32; 3]) -> String {
    let b = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    format!("#{:02x}{:02x}{:02x}", b(c[0]), b(c[1]), b(c[2]))
}

impl Figure<'_> {
    fn is_masked(&self, at: usize) -> bool {
        self.values.data[at] == f32::NEG_INFINITY
            || self.masked.is_some_and(|m| m.data.get(at).is_some_and(|v| *v == f32::NEG_INFINITY))
    }

    fn colour(&self, v: f32) -> [f32; 3] {
        colour(self.colour_map, self.range, v)
    }

    /// A standalone SVG: labels left and on top, one `<rect>` per cell with a
    /// `<title>` holding its exact value, masked cells hatched, a legend.
    pub fn svg(&self) -> String {
        let (rows, cols) = (self.values.rows, self.values.cols);
        let cell = if cols.max(rows) > 48 { 8.0 } else { 18.0 };
        let (left, top) = (110.0, 120.0);
        // Wide enough for the title (14 px bold) and caption (11 px) in a monospace font.
        let text_w =
            (20.0 + 8.6 * self.title.chars().count() as f64).max(20.0 + 6.8 * self.caption.chars().count() as f64);
        let (w, h) = ((left + cell * cols as f64 + 20.0).max(text_w).ceil(), top + cell * rows as f64 + 70.0);
        let mut s = String::new();
        s.push_str(&format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
             font-family=\"DejaVu Sans Mono, Menlo, monospace\" font-size=\"{}\">\n",
            if cell > 10.0 { 11 } else { 7 }
        ));
        s.push_str(
            "<defs><pattern id=\"masked\" width=\"6\" height=\"6\" patternUnits=\"userSpaceOnUse\" \
                    patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#383a42\"/>\
                    <rect width=\"2\" height=\"6\" fill=\"#52545c\"/></pattern></defs>\n",
        );
        s.push_str(&format!("<rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n"));
        s.push_str(&format!(
            "<text x=\"10\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>\n",
            escape::xml(&self.title)
        ));
        s.push_str(&format!("<text x=\"10\" y=\"38\" fill=\"#555\">{}</text>\n", escape::xml(&self.caption)));
        for (i, label) in self.row_labels.iter().enumerate().take(rows) {
            let y = top + cell * (i as f64 + 0.5);
            s.push_str(&format!(
                "<text x=\"{}\" y=\"{y}\" text-anchor=\"end\" dominant-baseline=\"middle\">{}</text>\n",
                left - 4.0,
                escape::xml(label)
            ));
        }
        for (j, label) in self.col_labels.iter().enumerate().take(cols) {
            let x = left + cell * (j as f64 + 0.5);
            s.push_str(&format!(
                "<text transform=\"translate({x} {}) rotate(-90)\" dominant-baseline=\"middle\">{}</text>\n",
                top - 4.0,
                escape::xml(label)
            ));
        }
        s.push_str("<g class=\"cells\">\n");
        for i in 0..rows {
            for j in 0..cols {
                let at = i * cols + j;
                let (x, y) = (left + cell * j as f64, top + cell * i as f64);
                let (fill, value) = if self.is_masked(at) {
                    ("url(#masked)".to_owned(), "masked (−∞)".to_owned())
                } else {
                    let v = self.values.data[at];
                    (hex(self.colour(v)), format!("{v}"))
                };
                let what = match (self.row_labels.get(i), self.col_labels.get(j)) {
                    (Some(r), Some(c)) => format!("{} → {}: {value}", r, c),
                    _ => format!("({i}, {j}): {value}"),
                };
                s.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"{fill}\" stroke=\"#ffffff\" \
                     stroke-width=\"0.5\"><title>{}</title></rect>\n",
                    escape::xml(&what)
                ));
            }
        }
        s.push_str("</g>\n");
        // Legend: 11 swatches across the map's range.
        let (lo, hi) = self.range;
        let (lo, hi) = match self.colour_map {
            ColourMap::Sequential => (lo, hi),
            ColourMap::Diverging => (-lo.abs().max(hi.abs()), lo.abs().max(hi.abs())),
        };
        let ly = top + cell * rows as f64 + 24.0;
        for k in 0..=10 {
            let v = lo + (hi - lo) * k as f32 / 10.0;
            s.push_str(&format!(
                "<rect x=\"{}\" y=\"{ly}\" width=\"16\" height=\"10\" fill=\"{}\"/>\n",
                left + 16.0 * k as f64,
                hex(self.colour(v))
            ));
        }
        s.push_str(&format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{lo:.3}</text>\n", left - 4.0, ly + 9.0));
        s.push_str(&format!("<text x=\"{}\" y=\"{}\">{hi:.3}</text>\n", left + 16.0 * 11.0 + 4.0, ly + 9.0));
        s.push_str(&format!(
            "<text x=\"10\" y=\"{}\" fill=\"#777\">attnscope · the model's own numbers</text>\n",
            ly + 30.0
        ));
        s.push_str("</svg>\n");
        s
    }

    /// CSV: a header row of column labels, then one row per row label; masked
    /// cells are empty.
    pub fn csv(&self) -> String {
        let mut out = String::from("\"\"");
        for label in &self.col_labels {
            out.push(',');
            out.push_str(&escape::csv_cell(label));
        }
        out.push('\n');
        for i in 0..self.values.rows {
            out.push_str(&escape::csv_cell(self.row_labels.get(i).map_or("", |s| s.as_str())));
            for j in 0..self.values.cols {
                out.push(',');
                let at = i * self.values.cols + j;
                if !self.is_masked(at) {
                    out.push_str(&format!("{}", self.values.data[at]));
                }
            }
            out.push('\n');
        }
        out
    }

    /// JSON: title, labels and the matrix (masked cells as null).
    pub fn json(&self) -> String {
        let rows: Vec<Vec<serde_json::Value>> = (0..self.values.rows)
            .map(|i| {
                (0..self.values.cols)
                    .map(|j| {
                        let at = i * self.values.cols + j;
                        if self.is_masked(at) {
                            serde_json::Value::Null
                        } else {
                            json!(self.values.data[at])
                        }
                    })
                    .collect()
            })
            .collect();
        json!({
            "title": self.title,
            "caption": self.caption,
            "rows": self.row_labels,
            "columns": self.col_labels,
            "values": rows,
        })
        .to_string()
    }
}

/// Where a figure comes from, for the HTML snapshot.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub text: String,
    pub model: String,
    pub mask: String,
    pub backend: String,
    /// A link to the same screen in attnscope (empty: none).
    pub link: String,
}

impl Figure<'_> {
    /// A standalone HTML page of the figure: the SVG inline (every value in a
    /// cell's tooltip), where it comes from, and every number in a table. No
    /// script and nothing fetched: it opens offline, anywhere.
    pub fn html(&self, from: &Provenance) -> String {
        let e = escape::xml;
        let mut table = String::from("<table>\n<tr><th></th>");
        for label in &self.col_labels {
            table.push_str(&format!("<th>{}</th>", e(label)));
        }
        table.push_str("</tr>\n");
        for i in 0..self.values.rows {
            table.push_str(&format!("<tr><th>{}</th>", e(self.row_labels.get(i).map_or("", |s| s.as_str()))));
            for j in 0..self.values.cols {
                let at = i * self.values.cols + j;
                if self.is_masked(at) {
                    table.push_str("<td class=\"masked\">masked</td>");
                } else {
                    table.push_str(&format!("<td>{}</td>", self.values.data[at]));
                }
            }
            table.push_str("</tr>\n");
        }
        table.push_str("</table>");
        let link = if from.link.is_empty() {
            String::new()
        } else {
            format!(" · <a href=\"{}\">open this view in attnscope</a>", e(&from.link))
        };
        format!(
            "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{title} — attnscope snapshot</title>\n<style>\n\
             body {{ margin: 0 auto; max-width: 960px; padding: 16px; font: 15px/1.45 system-ui, sans-serif; \
             color: #1b1f27; background: #fff; }}\n\
             h1 {{ font-size: 1.3rem; margin: 0 0 4px; }} .meta, .caption {{ color: #5d6675; margin: 4px 0; }}\n\
             .text {{ font-family: ui-monospace, monospace; white-space: pre-wrap; background: #f3f4f7; padding: 8px; \
             border-radius: 6px; }}\n figure {{ margin: 12px 0; overflow-x: auto; }} svg {{ max-width: 100%; height: auto; }}\n\
             table {{ border-collapse: collapse; font: 12px ui-monospace, monospace; }} \
             td, th {{ border: 1px solid #d9dde5; padding: 2px 5px; text-align: right; white-space: pre; }}\n\
             td.masked {{ color: #9aa3b2; }} details {{ margin-top: 12px; overflow-x: auto; }}\n</style>\n</head>\n\
             <body>\n<h1>{title}</h1>\n<p class=\"caption\">{caption}</p>\n\
             <p class=\"meta\">Model {model} · mask {mask} · computed on {backend}{link}</p>\n\
             <p class=\"text\">{text}</p>\n<figure>\n{svg}</figure>\n\
             <p class=\"meta\">Hover a cell for its exact value.</p>\n\
             <details><summary>Every value ({rows} × {cols})</summary>\n{table}\n</details>\n</body>\n</html>\n",
            title = e(&self.title),
            caption = e(&self.caption),
            model = e(&from.model),
            mask = e(&from.mask),
            backend = e(&from.backend),
            text = e(&from.text),
            svg = self.svg(),
            rows = self.values.rows,
            cols = self.values.cols,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figure(values: &Matrix) -> Figure<'_> {
        Figure {
            title: "weights <L0 H1>".into(),
            caption: "a & b".into(),
            values,
            masked: None,
            colour_map: ColourMap::Sequential,
            range: (0.0, 1.0),
            row_labels: vec!["The".into(), "<cat>".into()],
            col_labels: vec!["The".into(), "\"cat\"".into()],
        }
    }

    #[test]
    fn svg_has_a_cell_per_value_escaped_labels_and_hatched_masks() {
        let values = Matrix::from_vec(2, 2, vec![1.0, f32::NEG_INFINITY, 0.25, 0.75]);
        let svg = figure(&values).svg();
        assert_eq!(svg.matches("<rect x=").count(), 4 + 11, "4 cells and 11 legend swatches");
        assert!(svg.contains("&lt;cat&gt;") && !svg.contains("<cat>"));
        assert!(svg.contains("&quot;cat&quot;"));
        assert!(svg.contains("weights &lt;L0 H1&gt;"));
        assert_eq!(svg.matches("url(#masked)").count(), 1);
        assert!(svg.contains("#fde725") || svg.contains("#fce721") || svg.contains("#fce621"), "weight 1 is yellow");
        assert!(svg.contains("<title>&lt;cat&gt; → The: 0.25</title>"));
    }

    #[test]
    fn csv_and_json_keep_every_value_and_leave_masked_cells_empty() {
        let values = Matrix::from_vec(2, 2, vec![1.0, f32::NEG_INFINITY, 0.25, 0.75]);
        let f = figure(&values);
        assert_eq!(f.csv(), "\"\",\"The\",\"\"\"cat\"\"\"\n\"The\",1,\n\"<cat>\",0.25,0.75\n");
        let j: serde_json::Value = serde_json::from_str(&f.json()).unwrap();
        assert_eq!(j["values"], json!([[1.0, null], [0.25, 0.75]]));
        assert_eq!(j["rows"][1], "<cat>");
    }

    /// Labels and titles hold whatever the user typed: U+FFFF, U+FFFE and C0
    /// controls are not XML 1.0 characters, so they must not reach the SVG.
    #[test]
    fn svg_and_html_stay_well_formed_xml_whatever_the_labels_hold() {
        let values = Matrix::from_vec(2, 2, vec![1.0, f32::NEG_INFINITY, 0.25, 0.75]);
        let mut f = figure(&values);
        f.title = "title \u{FFFF}".into();
        f.row_labels = vec!["a\u{FFFF}b".into(), "\u{FFFE}\u{1}\u{1F}".into()];
        f.col_labels = vec!["<x\u{0}>".into(), "ok".into()];
        let svg = f.svg();
        if let Err(e) = roxmltree::Document::parse(&svg) {
            panic!("the SVG is not well-formed XML: {e}");
        }
        assert!(svg.contains("a\u{FFFD}b"));
        let html = f.html(&Provenance { text: "t\u{FFFF}".into(), ..Default::default() });
        assert!(!html.contains(['\u{FFFF}', '\u{FFFE}', '\u{0}', '\u{1}']));
    }

    #[test]
    fn csv_label_cells_are_never_spreadsheet_formulas() {
        let values = Matrix::from_vec(2, 2, vec![1.0, -2.0, 0.25, 0.75]);
        let mut f = figure(&values);
        f.row_labels = vec!["=HYPERLINK(\"http://x\")".into(), "+1".into()];
        f.col_labels = vec!["-2".into(), "@SUM(A1)".into()];
        let csv = f.csv();
        assert_eq!(csv, "\"\",\"'-2\",\"'@SUM(A1)\"\n\"'=HYPERLINK(\"\"http://x\"\")\",1,-2\n\"'+1\",0.25,0.75\n");
    }

    #[test]
    fn html_snapshot_is_standalone_escaped_and_holds_every_value() {
        let values = Matrix::from_vec(2, 2, vec![1.0, f32::NEG_INFINITY, 0.25, 0.75]);
        let from = Provenance {
            text: "<script>alert(1)</script>".into(),
            model: "default".into(),
            mask: "causal".into(),
            backend: "CPU".into(),
            link: "http://x/#text=a&layer=0".into(),
        };
        let html = figure(&values).html(&from);
        assert!(html.starts_with("<!doctype html>"));
        assert!(!html.contains("<script") && html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("src=\"http") && !html.contains("href=\"http://x/#text=a&layer"), "links escaped");
        assert!(html.contains("<svg") && html.contains("<td>0.25</td>") && html.contains("<td class=\"masked\">"));
        assert_eq!(html.matches("<?xml").count(), 0, "the SVG is inline, without its XML declaration");
    }
}

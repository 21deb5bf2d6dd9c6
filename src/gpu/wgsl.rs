//! The WGSL sources the app compiles, without their comments, at compile
//! time. Every kernel in `shaders/` opens with a header in comments (shapes,
//! layout, its CPU twin) written for people; the GPU does not read them, and
//! in the browser they were 10 kB of the wasm's gzipped bytes on every first
//! visit. [`wgsl!`] includes a shader as a `&'static str` with each line's
//! `//` comment, its indentation and trailing spaces, and the lines left
//! empty taken out. WGSL has no string literals, so `//` always starts a
//! comment; the kernels use no `/* */` comments (a test says so).

/// Bytes of `src` after [`strip`].
pub const fn stripped_len(src: &[u8]) -> usize {
    let mut len = 0;
    let mut start = 0;
    while start < src.len() {
        let (from, to, next) = kept_line(src, start);
        if to > from {
            len += to - from + 1;
        }
        start = next;
    }
    len
}

/// `src` without comments, indentation, trailing spaces and empty lines;
/// each kept line ends in `\n`. `N` must be [`stripped_len`]`(src)`.
pub const fn strip<const N: usize>(src: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut at = 0;
    let mut start = 0;
    while start < src.len() {
        let (from, to, next) = kept_line(src, start);
        if to > from {
            let mut i = from;
            while i < to {
                out[at] = src[i];
                at += 1;
                i += 1;
            }
            out[at] = b'\n';
            at += 1;
        }
        start = next;
    }
    out
}

/// The line starting at `start`: the range of it that is kept (`from..to`,
/// empty when nothing is) and where the next line starts.
const fn kept_line(src: &[u8], start: usize) -> (usize, usize, usize) {
    let mut end = start;
    while end < src.len() && src[end] != b'\n' {
        end += 1;
    }
    // Up to a comment.
    let mut code_end = start;
    while code_end < end && !(src[code_end] == b'/' && code_end + 1 < end && src[code_end + 1] == b'/') {
        code_end += 1;
    }
    let mut from = start;
    while from < code_end && src[from].is_ascii_whitespace() {
        from += 1;
    }
    let mut to = code_end;
    while to > from && src[to - 1].is_ascii_whitespace() {
        to -= 1;
    }
    (from, to, end + 1)
}

/// `shaders/$name` without comments (see the module), as a `&'static str`.
macro_rules! wgsl {
    ($name:literal) => {{
        const SOURCE: &[u8] = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name));
        const LEN: usize = $crate::gpu::wgsl::stripped_len(SOURCE);
        const STRIPPED: [u8; LEN] = $crate::gpu::wgsl::strip::<LEN>(SOURCE);
        const TEXT: &str = match core::str::from_utf8(&STRIPPED) {
            Ok(text) => text,
            Err(_) => panic!(concat!("shaders/", $name, " is not UTF-8")),
        };
        TEXT
    }};
}
pub(crate) use wgsl;

#[cfg(test)]
mod tests {
    use super::*;

    /// [`strip`] at run time: an array longer than needed keeps zeros after
    /// the [`stripped_len`] bytes it fills.
    fn stripped(src: &str) -> String {
        let all = strip::<65_536>(src.as_bytes());
        String::from_utf8(all[..stripped_len(src.as_bytes())].to_vec()).unwrap()
    }

    #[test]
    fn comments_indentation_and_empty_lines_go_and_code_stays() {
        let src = "// header\n//\n\nstruct P {\n    m: u32, // rows\n    n: u32,\n}\n\n   \nfn f() -> f32 { return 1.0 / 2.0; }  // halves\nlet x = a/b;";
        assert_eq!(
            stripped(src),
            "struct P {\nm: u32,\nn: u32,\n}\nfn f() -> f32 { return 1.0 / 2.0; }\nlet x = a/b;\n"
        );
        assert_eq!(stripped("// only a comment"), "");
        assert_eq!(stripped(""), "");
        assert_eq!(stripped("\r\nx = 1;\r\n"), "x = 1;\n");
    }

    #[test]
    fn every_shader_keeps_its_code_line_for_line_and_has_no_block_comments() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "wgsl") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            assert!(!src.contains("/*"), "{}: block comments are not stripped", path.display());
            let want: String = src
                .lines()
                .map(|l| l.split("//").next().unwrap().trim())
                .filter(|l| !l.is_empty())
                .map(|l| format!("{l}\n"))
                .collect();
            assert_eq!(stripped(&src), want, "{}", path.display());
            seen += 1;
        }
        assert!(seen > 20, "{seen} shaders");
    }

    #[test]
    fn the_macro_strips_a_real_shader() {
        let text = wgsl!("top_k.wgsl");
        assert!(!text.contains("//") && text.contains("@compute"));
        assert_eq!(text, stripped(include_str!("../../shaders/top_k.wgsl")));
    }
}

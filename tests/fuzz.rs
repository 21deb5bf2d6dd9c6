//! The fuzz step of CI on stable Rust (no extra tool): each target of
//! `fuzz/targets.rs` replays its seed corpus (`fuzz/corpus/<target>/`) and
//! then runs mutations of it (bit flips, random and boundary bytes, insertions,
//! deletions, splices and each target's dictionary of tokens) for a bounded
//! time, under a counting allocator that refuses any input more than
//! `alloc::LIMIT_BYTES`. A panic saves the input under
//! `target/fuzz-crashes/<target>/` and fails the test.
//!
//! `ATTNSCOPE_FUZZ_SECONDS` (per target; default 2, a smoke run within the
//! plain `cargo test`; tools/test.sh's fuzz step gives 60), `ATTNSCOPE_FUZZ_INPUTS`
//! (stop after this many mutated inputs instead), `ATTNSCOPE_FUZZ_SEED`
//! (default: from the clock, printed) and `ATTNSCOPE_FUZZ_REPLAY` (a folder
//! to replay instead of the seed corpus) steer it; the coverage-guided runs
//! use AFL on the same targets (fuzz/README.md).
#![cfg(not(target_arch = "wasm32"))]

#[path = "../fuzz/alloc.rs"]
mod alloc;
#[path = "../fuzz/targets.rs"]
mod targets;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOCATOR: alloc::Counting = alloc::Counting;

/// Longest input the mutator makes (and the longest corpus file read).
const MAX_LEN: usize = 64 << 10;

/// Tokens worth inserting whole, per target.
fn dictionary(target: &str) -> &'static [&'static [u8]] {
    match target {
        "loader" => &[
            b"\"n_embd\":",
            b"\"n_head\":",
            b"\"n_layer\":",
            b"\"n_positions\":",
            b"\"vocab_size\":",
            b"\"n_inner\":",
            b"\"layer_norm_epsilon\":",
            b"1e-300",
            b"4611686018427387904",
            b"18446744073709551615",
            b"null",
            b"-1",
            b"\"dtype\":\"F16\"",
            b"\"dtype\":\"BF16\"",
            b"\"dtype\":\"F32\"",
            b"\"shape\":[",
            b"\"data_offsets\":[",
            b"\"__metadata__\":{}",
            b"\xff\xff\x7f\x7f",
            b"\x00\x00\xc0\x7f",
            b"\x00\x00\x80\x7f",
        ],
        "gguf" => &[
            b"GGUF\x03\x00\x00\x00",
            b"\xff\xff\xff\xff\xff\xff\xff\xff",
            b"\x00\x00\x00\x00\x00\x00\x00\x80",
            b"general.architecture",
            b"llama.block_count",
            b"llama.attention.head_count_kv",
            b"tokenizer.ggml.tokens",
            b"tokenizer.ggml.merges",
            b"blk.0.attn_q.weight",
            b"token_embd.weight",
            b"\x02\x00\x00\x00",
            b"\x03\x00\x00\x00",
            b"\x08\x00\x00\x00",
            b"\x09\x00\x00\x00",
        ],
        "tokenizer" => &[
            b"\xed\xa0\x80",
            b"\xf0\x9f\x98\x80",
            b"\xcc\x81",
            b"\xe2\x80\xae",
            b"\xd7\x90",
            b"<|endoftext|>",
            b"  ",
            b"\r\n",
            b"\xef\xbf\xbf",
            b"\xe6\x97\xa5\xe6\x9c\xac",
            b"[UNK]",
            b"[CLS]",
        ],
        "share_parse" => &[
            b"text=",
            b"&layer=",
            b"&head=",
            b"&stage=",
            b"&mask=window:",
            b"&focus=",
            b"&lock=1%2C2",
            b"&t=",
            b"&view=",
            b"&present=",
            b"&seed=18446744073709551615",
            b"&topk=",
            b"&topp=",
            b"&theme=dark",
            b"&model=",
            b"%FF",
            b"%2",
            b"+",
            b"#",
            b"4095",
            b"4096",
            b"nan",
            b"inf",
            b"1e38",
        ],
        _ => &[
            b"&",
            b"<",
            b">",
            b"\"",
            b"'",
            b"=",
            b"+",
            b"-",
            b"@",
            b"\t",
            b"\r",
            b"\xef\xbf\xbf",
            b"\xef\xbf\xbe",
            b"\x00",
            b"%",
        ],
    }
}

/// SplitMix64, as the engine's sampler uses.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>], words: &[&[u8]]) {
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(input.len() + 1);
        match rng.below(9) {
            0 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] = rng.next() as u8;
            }
            2 if !input.is_empty() => {
                let i = at.min(input.len() - 1);
                input[i] = [0, 0xFF, 0x7F, 0x80, b'"', b'{', b'}', b',', b'0', b'9'][rng.below(10)];
            }
            3 => {
                let run: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                input.splice(at..at, run);
            }
            4 if !input.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(input.len());
                input.drain(at.min(end)..end);
            }
            5 if !input.is_empty() => {
                let from = rng.below(input.len());
                let piece = input[from..(from + 1 + rng.below(64)).min(input.len())].to_vec();
                input.splice(at..at, piece);
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let from = rng.below(other.len());
                input.truncate(at);
                input.extend_from_slice(&other[from..]);
            }
            7 | 8 if !words.is_empty() => {
                let word = words[rng.below(words.len())];
                input.splice(at..at, word.iter().copied());
            }
            _ => {}
        }
    }
    input.truncate(MAX_LEN);
}

/// The seed corpus of `target`, or the folder `ATTNSCOPE_FUZZ_REPLAY` names
/// (an AFL queue, say, to measure its inputs' allocations; run one target then).
fn corpus_of(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = match std::env::var_os("ATTNSCOPE_FUZZ_REPLAY") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target),
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.metadata().is_ok_and(|m| m.len() <= MAX_LEN as u64))
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.clone(), std::fs::read(&p).unwrap())).collect()
}

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// Replays the corpus, then mutates it until the time or input budget ends.
fn fuzz(name: &str) {
    let (_, run) = targets::TARGETS.iter().find(|(n, _)| *n == name).expect("a target");
    let corpus = corpus_of(name);
    targets::warm_up();
    assert!(!corpus.is_empty(), "fuzz/corpus/{name}/ is empty");
    let seed = env_number("ATTNSCOPE_FUZZ_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(18, |d| d.as_nanos() as u64)
    });
    let budget = Duration::from_secs(env_number("ATTNSCOPE_FUZZ_SECONDS").unwrap_or(2));
    let max_inputs = env_number("ATTNSCOPE_FUZZ_INPUTS").unwrap_or(u64::MAX);
    let crashes = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../fuzz-crashes").join(name);
    let mut failures = Vec::new();
    let (mut peak, mut largest) = (0usize, 0usize);
    let mut check = |input: &[u8], what: String, failures: &mut Vec<String>| {
        alloc::reset();
        let outcome = catch_unwind(AssertUnwindSafe(|| run(input)));
        let (p, l) = alloc::measured();
        (peak, largest) = (peak.max(p), largest.max(l));
        if outcome.is_err() {
            std::fs::create_dir_all(&crashes).ok();
            let file = crashes.join(format!("crash-{}", failures.len()));
            std::fs::write(&file, input).ok();
            failures.push(format!("{what} (saved as {})", file.display()));
        }
    };
    for (path, input) in &corpus {
        check(input, format!("corpus {}", path.display()), &mut failures);
    }
    let inputs: Vec<Vec<u8>> = corpus.into_iter().map(|(_, i)| i).collect();
    let words = dictionary(name);
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut count = 0u64;
    while count < max_inputs && start.elapsed() < budget && failures.len() < 10 {
        let mut input = inputs[rng.below(inputs.len())].clone();
        mutate(&mut rng, &mut input, &inputs, words);
        check(&input, format!("mutated input {count} of seed {seed}"), &mut failures);
        count += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "fuzz {name}: {count} mutated inputs + {} corpus in {seconds:.1} s ({:.0} inputs/s), seed {seed}, \
         {} panics, peak {:.0} KiB live per input, largest allocation {:.0} KiB (limit {} MiB)",
        inputs.len(),
        count as f64 / seconds.max(1e-9),
        failures.len(),
        peak as f64 / 1024.0,
        largest as f64 / 1024.0,
        alloc::LIMIT_BYTES >> 20,
    );
    assert!(failures.is_empty(), "fuzz {name}: panics on\n{}", failures.join("\n"));
}

#[test]
fn fuzz_loader() {
    fuzz("loader");
}

#[test]
fn fuzz_gguf() {
    fuzz("gguf");
}

#[test]
fn fuzz_tokenizer() {
    fuzz("tokenizer");
}

#[test]
fn fuzz_share_parse() {
    fuzz("share_parse");
}

#[test]
fn fuzz_escape() {
    fuzz("escape");
}

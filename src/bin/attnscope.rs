//! The native command line: traces as JSON, generation, benchmarks, and
//! which heads matter (the logit lens, ablation and patching).

#[cfg(not(target_arch = "wasm32"))]
#[path = "attnscope/bench.rs"]
mod bench;

#[cfg(not(target_arch = "wasm32"))]
#[path = "attnscope/heads.rs"]
mod heads;

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;

    use super::{bench, heads};
    use attnscope::engine::analysis;
    use attnscope::engine::head_finder;
    use attnscope::engine::init::random_weights;
    use attnscope::engine::intervene::Replacement;
    use attnscope::engine::kv_cache::generate_cached;
    use attnscope::engine::sampling::SamplingParams;
    use attnscope::engine::{forward_cpu, Mask};
    use attnscope::gpu::{GpuContext, GpuForward};
    use attnscope::model::{Model, ModelConfig, Token};
    use clap::{Parser, Subcommand, ValueEnum};
    use serde_json::{json, Value};

    pub(crate) const DEFAULT_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/default");
    /// Bounds on counts and sizes given as flags (`--steps` is bounded by the context).
    const MAX_REPEAT: usize = 1000;
    const MAX_MATMUL: usize = 16384;
    const MAX_GENERATE: usize = 4096;
    const MAX_SEQUENCES: usize = 10_000;

    #[derive(Parser)]
    #[command(
        name = "attnscope",
        version,
        about = "Look inside a small transformer: traces, generation, benchmarks, which heads matter."
    )]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Clone, Copy, PartialEq, ValueEnum)]
    enum Backend {
        Cpu,
        Gpu,
    }

    /// A 16-bit weight format (`bench --half`).
    #[derive(Clone, Copy, PartialEq, ValueEnum)]
    enum HalfArg {
        F16,
        Bf16,
    }

    #[derive(Clone, Copy, PartialEq, ValueEnum)]
    enum Logits {
        Last,
        All,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Print one JSON object with the tokens and every stage of the forward pass.
        Trace {
            /// Directory holding config.json, the weights (model.safetensors or
            /// shards listed by model.safetensors.index.json) and tokenizer.json;
            /// or a GGUF file (Llama family).
            #[arg(long, default_value = DEFAULT_MODEL)]
            model: PathBuf,
            /// Text to tokenize.
            #[arg(long, conflicts_with = "ids", required_unless_present = "ids")]
            text: Option<String>,
            /// Token ids, comma separated, instead of text.
            #[arg(long, value_delimiter = ',')]
            ids: Option<Vec<u32>>,
            /// causal, bidirectional or window:N.
            #[arg(long, default_value = "causal", value_parser = parse_mask)]
            mask: Mask,
            #[arg(long, value_enum, default_value = "cpu")]
            backend: Backend,
            /// Logits of the last position only, or of every position.
            #[arg(long, value_enum, default_value = "last")]
            logits: Logits,
            /// Write the JSON here instead of standard output.
            #[arg(long)]
            out: Option<PathBuf>,
        },
        /// Write a safetensors file with each tensor's bytes shuffled (grouped
        /// by their place in the element, as HDF5's shuffle filter), which
        /// gzips smaller; the page fetches the default model's shuffled copy.
        Shuffle {
            /// The safetensors file.
            file: PathBuf,
            /// Where to write; by default the file's name + `.shuffled`.
            #[arg(long)]
            out: Option<PathBuf>,
            /// Undo the shuffle instead.
            #[arg(long)]
            unshuffle: bool,
        },
        /// Write a tokenizer.json without the part of its vocabulary that
        /// follows from its merges (the page fetches the default model's
        /// compact copy), or expand one back.
        CompactTokenizer {
            /// The tokenizer.json.
            file: PathBuf,
            /// Where to write; by default tokenizer.compact.json beside it.
            #[arg(long)]
            out: Option<PathBuf>,
            /// Expand a compact copy instead.
            #[arg(long)]
            expand: bool,
        },
        /// Continue a prompt, one sampled token at a time.
        Generate {
            #[arg(long, default_value = DEFAULT_MODEL)]
            model: PathBuf,
            #[arg(long)]
            prompt: String,
            #[arg(long, default_value_t = 20)]
            steps: usize,
            /// 0 is greedy.
            #[arg(long, default_value_t = 1.0)]
            temperature: f32,
            #[arg(long)]
            top_k: Option<usize>,
            #[arg(long)]
            top_p: Option<f32>,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Print each step with its probability as JSON lines.
            #[arg(long)]
            json: bool,
        },
        /// Time the forward pass per backend at several context lengths, KV-cache appends, and matmul GFLOP/s.
        Bench {
            #[arg(long, default_value = DEFAULT_MODEL)]
            model: PathBuf,
            /// Context lengths to time.
            #[arg(long, value_delimiter = ',', default_value = "16,64,128,256")]
            t: Vec<usize>,
            #[arg(long, value_enum, default_value = "cpu")]
            backend: Backend,
            /// Also time GPT-2 small's shape (12 layers, d=768, vocab 50257) with random weights.
            #[arg(long)]
            gpt2_small: bool,
            /// Also time GPT-2 small's shape with its random weights rounded to this 16-bit
            /// format and kept 16-bit (as such a checkpoint loads), beside the f32 copy.
            #[arg(long, value_enum, requires = "gpt2_small")]
            half: Option<HalfArg>,
            /// Also time SmolLM2-135M's shape (Llama family: 30 layers, 9 query heads over 3 KV heads
            /// of 64, d=576, SwiGLU 1536, vocab 49152, tied head, RoPE θ 100000) with random f32 weights,
            /// as its GGUF file loads.
            #[arg(long)]
            smollm2: bool,
            /// Skip the ablation sweeps (every head ablated alone: minutes on large shapes).
            #[arg(long)]
            no_sweep: bool,
            /// Runs per length (the median is reported).
            #[arg(long, default_value_t = 3)]
            repeat: usize,
            /// Run every backend (CPU and GPU) in this one process, for ratios.
            #[arg(long)]
            all_backends: bool,
            /// Tokens of cached generation to time per run (CPU backend).
            #[arg(long, default_value_t = 32)]
            generate: usize,
            /// Square matmul sizes for the GFLOP/s figures (GPU backend; above 1024 skipped on software adapters).
            #[arg(long, value_delimiter = ',', default_value = "256,1024,4096")]
            matmul: Vec<usize>,
        },
        /// Measure the model: loss on held-out text, what each head attends to, and the induction test.
        Eval {
            #[arg(long, default_value = DEFAULT_MODEL)]
            model: PathBuf,
            /// Held-out text (UTF-8) for the loss and the attention scores.
            #[arg(long)]
            text_file: PathBuf,
            /// Use at most this many tokens of the text.
            #[arg(long, default_value_t = 20_000)]
            max_tokens: usize,
            /// Random sequences for the induction test (each shown twice).
            #[arg(long, default_value_t = 20)]
            sequences: usize,
            #[arg(long, default_value_t = 0)]
            seed: u64,
            /// Print JSON instead of a table.
            #[arg(long)]
            json: bool,
            /// A token id for the head finder's "attends to token X" template.
            #[arg(long)]
            finder_token: Option<u32>,
        },
        /// The logit lens (the residual after each sublayer through the final norm and LM head, top
        /// tokens per position) and each head's and MLP's direct contribution to a token's logit, as JSON.
        Lens(heads::LensArgs),
        /// Zero- or mean-ablate heads and print the change in a token's next-token logit as JSON;
        /// with --sweep, every head alone (a layer × head grid).
        Ablate(heads::AblateArgs),
        /// Patch heads' outputs from a second prompt of the same length (in tokens) and print the
        /// change in a token's next-token logit as JSON; with --sweep, every head alone.
        Patch(heads::PatchArgs),
        /// The model's positional numbers as JSON, what the page's positional panel shows: learned
        /// positions' cosine similarity (GPT-2), or RoPE's frequency per pair and the decay of q·R(m)q.
        Positions {
            /// A model directory (tokenizer.json not needed) or a GGUF file.
            #[arg(long, default_value = DEFAULT_MODEL)]
            model: PathBuf,
            /// Learned positions: how many (from position 0) to compare.
            #[arg(long, default_value_t = attnscope::engine::positional::LEARNED_SHOWN)]
            positions: usize,
            /// RoPE: the farthest distance of the decay curve (the context bounds it too).
            #[arg(long, default_value_t = attnscope::engine::positional::DECAY_MAX)]
            max_distance: usize,
        },
        /// Print the GPU adapter wgpu finds.
        GpuInfo,
    }

    fn parse_mask(text: &str) -> Result<Mask, String> {
        Mask::parse(text).ok_or_else(|| format!("unknown mask `{text}`: use causal, bidirectional or window:N (N ≥ 1)"))
    }

    fn load(model: &Path) -> Result<Model, String> {
        Model::load(model).map_err(|e| format!("{}: {e}", model.display()))
    }

    /// Given ids, the tokenizer only names the tokens: a directory without
    /// one loads anyway (and says so).
    fn load_for_ids(dir: &Path, ids_given: bool) -> Result<Model, String> {
        if !ids_given {
            return load(dir);
        }
        let (model, has_tokenizer) =
            Model::load_dir_tokenizer_optional(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        if !has_tokenizer {
            eprintln!(
                "attnscope: {} has no tokenizer.json: running the given ids, tokens shown by id (<id>)",
                dir.display()
            );
        }
        Ok(model)
    }

    fn tokens_of(model: &Model, text: Option<String>, ids: Option<Vec<u32>>) -> Result<Vec<Token>, String> {
        match (text, ids) {
            (Some(text), _) => model.tokenizer.encode(&text).map_err(|e| e.to_string()),
            (None, Some(ids)) => Ok(ids
                .into_iter()
                .map(|id| Token { id, text: model.tokenizer.id_to_text(id), start: 0, end: 0 })
                .collect()),
            (None, None) => Err("give --text or --ids".into()),
        }
    }

    fn gpu_context() -> Result<GpuContext, String> {
        GpuContext::new_blocking().map_err(|e| e.to_string())
    }

    fn trace_json(
        model: &Model,
        tokens: Vec<Token>,
        mask: Mask,
        logits: Logits,
        backend: Backend,
    ) -> Result<Value, String> {
        let trace = match backend {
            Backend::Cpu => forward_cpu(&model.config, &model.weights, tokens, mask).map_err(|e| e.to_string())?,
            Backend::Gpu => {
                let ctx = gpu_context()?;
                let mut fwd = GpuForward::new(&ctx, model).map_err(|e| e.to_string())?;
                pollster::block_on(fwd.trace(&ctx, tokens, mask, logits == Logits::All)).map_err(|e| e.to_string())?
            }
        };
        let mut value = serde_json::to_value(&trace).map_err(|e| e.to_string())?;
        if logits == Logits::Last {
            let last = trace.logits.row(trace.logits.rows - 1).to_vec();
            value["logits"] = json!([last]);
        }
        let mut info = serde_json::to_value(&model.config).map_err(|e| e.to_string())?;
        info["name"] = json!(model.name);
        value["model"] = info;
        value["backend"] = json!(match backend {
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        });
        Ok(value)
    }

    /// Prints to stdout; a closed pipe (`| head`) ends the output quietly instead of panicking.
    fn emit(text: &str) -> Result<(), String> {
        use std::io::Write;
        match writeln!(std::io::stdout().lock(), "{text}") {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write the output: {e}")),
            _ => Ok(()),
        }
    }

    fn run(cli: Cli) -> Result<(), String> {
        match cli.command {
            Command::Shuffle { file, out, unshuffle } => {
                use attnscope::model::shuffle;
                let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let filtered = if unshuffle { shuffle::unshuffle(&bytes) } else { shuffle::shuffle(&bytes) };
                let filtered = filtered.map_err(|e| format!("{}: {e}", file.display()))?;
                let out = out.unwrap_or_else(|| {
                    let mut name = file.clone().into_os_string();
                    name.push(".shuffled");
                    PathBuf::from(name)
                });
                std::fs::write(&out, filtered).map_err(|e| format!("cannot write {}: {e}", out.display()))
            }
            Command::CompactTokenizer { file, out, expand } => {
                use attnscope::model::compact_vocab;
                let bytes = std::fs::read(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
                let written = if expand { compact_vocab::expand(&bytes) } else { compact_vocab::compact(&bytes) };
                let written = written.map_err(|e| format!("{}: {e}", file.display()))?;
                let out = out.unwrap_or_else(|| file.with_file_name(compact_vocab::FILE_NAME));
                std::fs::write(&out, written).map_err(|e| format!("cannot write {}: {e}", out.display()))
            }
            Command::GpuInfo => {
                let ctx = GpuContext::new_blocking().map_err(|e| e.to_string())?;
                println!("{}", ctx.describe());
                Ok(())
            }
            Command::Positions { model: dir, positions, max_distance } => {
                let model = load_for_ids(&dir, true)?;
                let numbers = attnscope::engine::positional::positions(
                    &model.config,
                    model.weights.wpe.as_ref(),
                    positions,
                    max_distance,
                );
                emit(&serde_json::to_string(&numbers).map_err(|e| e.to_string())?)
            }
            Command::Trace { model: dir, text, ids, mask, backend, logits, out } => {
                let model = load_for_ids(&dir, ids.is_some())?;
                let tokens = tokens_of(&model, text, ids)?;
                let value = trace_json(&model, tokens, mask, logits, backend)?;
                let text = serde_json::to_string(&value).map_err(|e| e.to_string())?;
                match out {
                    Some(path) => std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display())),
                    None => emit(&text),
                }
            }
            Command::Lens(heads::LensArgs { model, text, ids, k, position, token }) => {
                let model = load_for_ids(&model, ids.is_some())?;
                let tokens = tokens_of(&model, text, ids)?;
                emit(&heads::lens(&model, tokens, k, position, token)?.to_string())
            }
            Command::Ablate(heads::AblateArgs { model, text, ids, heads: names, mode, sweep, token, trace }) => {
                let model = load_for_ids(&model, ids.is_some())?;
                let tokens = tokens_of(&model, text, ids)?;
                let kind = match mode {
                    heads::AblateMode::Zero => Replacement::Zero,
                    heads::AblateMode::Mean => Replacement::Mean,
                };
                emit(
                    &heads::intervene_json(&model, tokens, None, kind, &names, heads::Asked { sweep, token, trace })?
                        .to_string(),
                )
            }
            Command::Patch(heads::PatchArgs {
                model,
                text,
                ids,
                source,
                source_ids,
                heads: names,
                sweep,
                token,
                trace,
            }) => {
                let model = load_for_ids(&model, ids.is_some() && source_ids.is_some())?;
                let tokens = tokens_of(&model, text, ids)?;
                let source = tokens_of(&model, source, source_ids)?;
                let value = heads::intervene_json(
                    &model,
                    tokens,
                    Some(source),
                    Replacement::Patch,
                    &names,
                    heads::Asked { sweep, token, trace },
                )?;
                emit(&value.to_string())
            }
            Command::Generate { model, prompt, steps, temperature, top_k, top_p, seed, json } => {
                if !(0.0..=100.0).contains(&temperature) {
                    return Err(format!("--temperature must be between 0 and 100, not {temperature}"));
                }
                if top_p.is_some_and(|p| !(p > 0.0 && p <= 1.0)) {
                    return Err("--top-p must be in (0, 1]".into());
                }
                let model = load(&model)?;
                let tokens = model.tokenizer.encode(&prompt).map_err(|e| e.to_string())?;
                let params = SamplingParams { temperature, top_k, top_p, seed };
                let generation =
                    generate_cached(&model, tokens, steps, &params, Mask::Causal).map_err(|e| e.to_string())?;
                if json {
                    for step in &generation.steps {
                        emit(&serde_json::to_string(step).map_err(|e| e.to_string())?)?;
                    }
                } else {
                    emit(&format!("{prompt}{}", generation.continuation(&model)))?;
                }
                if generation.hit_context_limit {
                    eprintln!("attnscope: stopped early: the context holds {} tokens", model.config.n_positions);
                }
                Ok(())
            }
            Command::Eval { model, text_file, max_tokens, sequences, seed, json, finder_token } => {
                if sequences > MAX_SEQUENCES {
                    return Err(format!("--sequences must be at most {MAX_SEQUENCES}, not {sequences}"));
                }
                let model = load(&model)?;
                analysis::check_eval_context(&model).map_err(|e| e.to_string())?;
                let text = std::fs::read_to_string(&text_file).map_err(|e| format!("{}: {e}", text_file.display()))?;
                let ids = model.tokenizer.encode_ids_in_pieces(&text, max_tokens).map_err(|e| e.to_string())?;
                let (loss, predicted) = analysis::mean_loss(&model, &ids).map_err(|e| e.to_string())?;
                let heads = analysis::attention_scores_by_head(&model, &ids).map_err(|e| e.to_string())?;
                let length = 50.min(model.config.n_positions / 2);
                let induction = analysis::induction_test(&model, length, sequences, seed).map_err(|e| e.to_string())?;
                let heads: Vec<_> = heads
                    .into_iter()
                    .zip(&induction.heads)
                    .map(|(h, i)| analysis::HeadScore { induction: i.induction, ..h })
                    .collect();
                // The head finder on the text's first window, as the page scores the text it shows.
                let window = &ids[..ids.len().min(analysis::eval_window(&model))];
                let finder_trace = model.trace_ids(window, Mask::Causal).map_err(|e| e.to_string())?;
                let finder = head_finder::template_scores(&finder_trace, finder_token);
                if json {
                    let value = json!({
                        "loss": loss, "tokens_predicted": predicted, "heads": heads,
                        "finder": {"tokens": window.len(), "heads": finder},
                        "induction": {"length": induction.length, "sequences": induction.sequences,
                            "loss_first_copy": induction.loss_first_copy, "loss_second_copy": induction.loss_second_copy},
                    });
                    return emit(&value.to_string());
                }
                emit(&format!("held-out loss: {loss:.4} nats/token over {predicted} predictions"))?;
                emit(&format!(
                    "induction test ({} random tokens shown twice, {} sequences): loss {:.3} on the first copy, {:.3} on the second",
                    induction.length, induction.sequences, induction.loss_first_copy, induction.loss_second_copy
                ))?;
                emit("layer head  previous-token  first-token  induction")?;
                for h in &heads {
                    emit(&format!(
                        "{:>5} {:>4}  {:>14.3}  {:>11.3}  {:>9.3}",
                        h.layer, h.head, h.previous_token, h.first_token, h.induction
                    ))?;
                }
                for line in heads::finder_table(&finder, window.len()) {
                    emit(&line)?;
                }
                Ok(())
            }
            Command::Bench {
                model,
                t,
                backend,
                gpt2_small,
                half,
                smollm2,
                no_sweep,
                repeat,
                all_backends,
                generate,
                matmul,
            } => {
                // Counts and sizes from flags are bounded before anything is reserved for them.
                if !(1..=MAX_REPEAT).contains(&repeat) {
                    return Err(format!("--repeat must be between 1 and {MAX_REPEAT}, not {repeat}"));
                }
                if !(1..=MAX_GENERATE).contains(&generate) {
                    return Err(format!("--generate must be between 1 and {MAX_GENERATE}, not {generate}"));
                }
                if let Some(n) = matmul.iter().find(|&&n| !(1..=MAX_MATMUL).contains(&n)) {
                    return Err(format!("--matmul sizes must be between 1 and {MAX_MATMUL}, not {n}"));
                }
                // Timing needs ids only: a directory without tokenizer.json benchmarks too.
                let (model, _) =
                    Model::load_dir_tokenizer_optional(&model).map_err(|e| format!("{}: {e}", model.display()))?;
                let gpt2 = gpt2_small.then(|| {
                    let config = ModelConfig::gpt2_small();
                    let weights = random_weights(&config, 1);
                    (config, weights)
                });
                let gpt2_name = "GPT-2 small shape (random weights)";
                let smol = smollm2.then(|| {
                    let config = ModelConfig::smollm2_135m();
                    let weights = random_weights(&config, 1);
                    (config, weights)
                });
                let smol_name = "SmolLM2-135M shape (random weights)";
                let gpt2_half = half.zip(gpt2.as_ref()).map(|(half, (config, weights))| {
                    let format = match half {
                        HalfArg::F16 => attnscope::model::Half::F16,
                        HalfArg::Bf16 => attnscope::model::Half::Bf16,
                    };
                    (config.clone(), weights.rounded(format), format!("{gpt2_name}, kept {format:?}"))
                });
                println!("median of {repeat} runs per figure");
                if backend == Backend::Cpu || all_backends {
                    bench::cpu(&model.name, &model.config, &model.weights, &t, repeat)?;
                    bench::cpu_keystrokes(&model.config, &model.weights, &t, repeat)?;
                    bench::cpu_generation(&model.name, &model.config, &model.weights, generate, repeat)?;
                    if !no_sweep {
                        bench::cpu_sweep(&model.name, &model.config, &model.weights, &t, repeat)?;
                    }
                    bench::cpu_head_finder(&model.config, &model.weights, &t, repeat)?;
                    bench::cpu_page_traces(&model.config, &model.weights, &t, repeat)?;
                    if let Some((config, weights)) = &gpt2 {
                        bench::cpu(gpt2_name, config, weights, &t, repeat)?;
                        bench::cpu_keystrokes(config, weights, &t, repeat)?;
                        bench::cpu_page_traces(config, weights, &t, repeat)?;
                    }
                    if let Some((config, weights, name)) = &gpt2_half {
                        bench::cpu(name, config, weights, &t, repeat)?;
                    }
                    if let Some((config, weights)) = &smol {
                        bench::cpu(smol_name, config, weights, &t, repeat)?;
                        bench::cpu_keystrokes(config, weights, &t, repeat)?;
                    }
                }
                if backend == Backend::Gpu || all_backends {
                    let ctx = gpu_context()?;
                    bench::gpu(&ctx, &model.name, &model.config, &model.weights, &t, repeat)?;
                    if !no_sweep {
                        bench::gpu_sweep(&ctx, &model.name, &model.config, &model.weights, &t, repeat)?;
                    }
                    if let Some((config, weights)) = &gpt2 {
                        bench::gpu(&ctx, gpt2_name, config, weights, &t, repeat)?;
                        if !no_sweep {
                            bench::gpu_sweep(&ctx, gpt2_name, config, weights, &t, repeat)?;
                        }
                    }
                    if let Some((config, weights, name)) = &gpt2_half {
                        bench::gpu(&ctx, name, config, weights, &t, repeat)?;
                    }
                    if let Some((config, weights)) = &smol {
                        bench::gpu(&ctx, smol_name, config, weights, &t, repeat)?;
                    }
                    bench::matmul(&ctx, &matmul, repeat)?;
                }
                Ok(())
            }
        }
    }

    pub fn main() -> ExitCode {
        match run(Cli::parse()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("attnscope: {message}");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}

//! The native command line: prints traces as JSON.

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use std::path::PathBuf;
    use std::process::ExitCode;

    use attnscope::engine::{attention_layer_cpu, Mask, Trace};
    use attnscope::gpu::{trace_attention_gpu, GpuAttention, GpuContext};
    use attnscope::model::{Model, ModelConfig, Token};
    use clap::{Parser, Subcommand, ValueEnum};
    use serde::Serialize;

    const DEFAULT_MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/www/models/placeholder");

    #[derive(Parser)]
    #[command(name = "attnscope", version, about = "Look inside a small transformer: traces as JSON.")]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    #[derive(Clone, Copy, ValueEnum)]
    enum Backend {
        Cpu,
        Gpu,
    }

    #[derive(Subcommand)]
    enum Command {
        /// Print one JSON object with the tokens and every attention stage.
        Trace {
            /// Directory holding config.json, model.safetensors and tokenizer.json.
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
            /// Write the JSON here instead of standard output.
            #[arg(long)]
            out: Option<PathBuf>,
        },
        /// Print the GPU adapter wgpu finds.
        GpuInfo,
    }

    fn parse_mask(text: &str) -> Result<Mask, String> {
        Mask::parse(text).ok_or_else(|| format!("unknown mask `{text}`: use causal, bidirectional or window:N (N ≥ 1)"))
    }

    #[derive(Serialize)]
    struct ModelInfo<'a> {
        name: &'a str,
        #[serde(flatten)]
        config: &'a ModelConfig,
    }

    #[derive(Serialize)]
    struct TraceJson<'a> {
        model: ModelInfo<'a>,
        backend: &'static str,
        mask: Mask,
        #[serde(flatten)]
        trace: &'a Trace,
    }

    fn tokens_of(model: &Model, text: Option<String>, ids: Option<Vec<u32>>) -> Result<Vec<Token>, String> {
        match (text, ids) {
            (Some(text), _) => model.tokenizer.encode(&text).map_err(|e| e.to_string()),
            (None, Some(ids)) => {
                Ok(ids.into_iter().map(|id| Token { id, text: String::new(), start: 0, end: 0 }).collect())
            }
            (None, None) => Err("give --text or --ids".into()),
        }
    }

    fn run(cli: Cli) -> Result<(), String> {
        match cli.command {
            Command::GpuInfo => {
                let ctx = GpuContext::new_blocking().map_err(|e| e.to_string())?;
                println!("{}", ctx.describe());
                Ok(())
            }
            Command::Trace { model, text, ids, mask, backend, out } => {
                let model = Model::load_dir(&model).map_err(|e| format!("{}: {e}", model.display()))?;
                let tokens = tokens_of(&model, text, ids)?;
                let trace = match backend {
                    Backend::Cpu => attention_layer_cpu(&model, tokens, mask).map_err(|e| e.to_string())?,
                    Backend::Gpu => {
                        let ctx = GpuContext::new_blocking().map_err(|e| e.to_string())?;
                        let mut attn = GpuAttention::new(&ctx, &model).map_err(|e| e.to_string())?;
                        pollster::block_on(trace_attention_gpu(&ctx, &mut attn, tokens, mask))
                            .map_err(|e| e.to_string())?
                    }
                };
                let json = TraceJson {
                    model: ModelInfo { name: &model.name, config: &model.config },
                    backend: match backend {
                        Backend::Cpu => "cpu",
                        Backend::Gpu => "gpu",
                    },
                    mask,
                    trace: &trace,
                };
                let text = serde_json::to_string(&json).map_err(|e| e.to_string())?;
                match out {
                    Some(path) => std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display())),
                    None => {
                        println!("{text}");
                        Ok(())
                    }
                }
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

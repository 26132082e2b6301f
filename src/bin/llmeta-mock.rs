//! `llmeta-mock`: the mock OpenAI-compatible upstream, for trying llmeta and for benchmarks.
use clap::Parser;

#[derive(Parser)]
#[command(about = "A mock OpenAI-compatible server (see llmeta::mock for per-request directives)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9090")]
    bind: std::net::SocketAddr,
    /// Answer tokens per request.
    #[arg(long, default_value_t = 20)]
    tokens: usize,
    /// Delay before the first token, in milliseconds.
    #[arg(long, default_value_t = 0)]
    ttft_ms: u64,
    /// Delay between tokens, in milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Context size in tokens, as llama.cpp's `-c`: reported by `/v1/models` as `meta.n_ctx`, and a longer
    /// prompt is refused with 400 `exceed_context_size_error`. Unset: no limit, and no `meta`.
    #[arg(long, env = "LLMETA_MOCK_N_CTX")]
    n_ctx: Option<u64>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let a = Args::parse();
    let listener = tokio::net::TcpListener::bind(a.bind).await?;
    eprintln!(
        "llmeta-mock listening on http://{}/v1",
        listener.local_addr()?
    );
    llmeta::mock::serve(
        listener,
        llmeta::mock::MockConfig {
            tokens: a.tokens,
            ttft_ms: a.ttft_ms,
            delay_ms: a.delay_ms,
            n_ctx: a.n_ctx,
        },
    )
    .await
}

//! The `llmeta` binary: parse the command line and run it.
use clap::Parser as _;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = llmeta::cli::Cli::parse();
    match llmeta::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("llmeta: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

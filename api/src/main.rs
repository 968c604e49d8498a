//! The `omorg` command line: see `omorg --help` and docs/operations.md.
#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = omorg_api::config::Cli::parse();
    if let Err(e) = omorg_api::cli::run(cli).await {
        eprintln!("omorg: error: {e}");
        std::process::exit(e.exit_code());
    }
}

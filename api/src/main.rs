//! The `omorg` command line: see `omorg --help` and docs/operations.md.
#![forbid(unsafe_code)]

use clap::Parser;

/// mimalloc instead of the system allocator: the projector keeps every timeline's history in
/// memory, and with that heap in place glibc's allocator made the query handlers' many small
/// allocations about twice as slow (the large responsibility matrix: p50 ~47 ms against ~22 ms;
/// see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    let cli = omorg_api::config::Cli::parse();
    match omorg_api::cli::run(cli).await {
        Ok(()) => {}
        // The reader of the output went away (`omorg replay | head`): its choice, not a
        // failure of the command, so no message; the shell's usual status for it.
        Err(omorg_api::cli::CliError::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            std::process::exit(141)
        }
        Err(e) => {
            eprintln!("omorg: error: {e}");
            std::process::exit(e.exit_code());
        }
    }
}

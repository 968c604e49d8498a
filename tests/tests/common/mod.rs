//! Helpers the CLI test files share: the `omorg` command line run in process or as the real
//! binary, and scratch directories.

// Each test file uses some of these; none uses all.
#![allow(dead_code)]

use clap::Parser;
use omorg_api::cli::{run, CliError};
use omorg_api::config::Cli;
use omorg_e2e::TestApp;
use std::path::PathBuf;

/// Runs `omorg ARGS` in process on the test app's database.
pub async fn omorg(app: &TestApp, args: &[&str]) -> Result<(), CliError> {
    let mut argv = vec!["omorg", "--database-url", &app.database_url];
    argv.extend_from_slice(args);
    run(Cli::try_parse_from(argv).expect("valid command line")).await
}

/// Runs the real binary with `args` and `env` (nothing inherited from `OMORG_*`); returns
/// whether it succeeded and its standard error.
pub async fn omorg_binary(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = omorg_output(args, env).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the real binary with `args` and `env` (nothing inherited from `OMORG_*`).
pub async fn omorg_output(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_omorg-under-test"));
    for k in [
        "OMORG_NO_AUTH",
        "OMORG_LISTEN",
        "OMORG_TOKENS",
        "DATABASE_URL",
    ] {
        command.env_remove(k);
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("run omorg")
}

/// A fresh directory for one test's files and SQLite database.
/// Writes `text` to `dir/name`; returns the path as text, for a command line.
pub fn write_file(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Runs the real binary's `import FILE` on `url` with `options`; returns whether it succeeded
/// and its standard error.
pub async fn import_file(url: &str, file: &str, options: &[&str]) -> (bool, String) {
    let args = [&["--database-url", url, "import", file][..], options].concat();
    omorg_binary(&args, &[]).await
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("omorg-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

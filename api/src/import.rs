//! Import files.
use crate::cli::CliError;
use crate::config::ImportArgs;
use omorg_domain::TimelineCommand;

/// Parses an import file.
pub fn parse_file(
    _path: &std::path::Path,
    _text: &str,
    _args: &ImportArgs,
) -> Result<Vec<TimelineCommand>, CliError> {
    Ok(Vec::new())
}

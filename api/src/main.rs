//! The `omorg` command line.
fn main() {
    eprintln!("omorg: the service is not built yet; see README.md");
    std::process::exit(2);
}

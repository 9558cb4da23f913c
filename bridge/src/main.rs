//! Entry point of `mnemo-bridge`. Not functional yet: see `lib.rs`.

fn main() -> anyhow::Result<()> {
    // stdout is reserved for MCP, so even this message goes to stderr.
    eprintln!("mnemo-bridge is not implemented yet; use the server's REST API directly.");
    std::process::exit(2)
}

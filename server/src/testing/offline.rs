//! The commands that run on a data folder and exit (`export`, `import`, `reembed`,
//! `restore`, `keys`), run to the end, and what they said.

use std::path::Path;
use std::process::Output;

use mnemo_api::transfer::ExportedMemory;

use super::process::server_command;

/// `mnemo-server <args>` on `data` with `env` on top of [`server_command`]'s clean
/// environment, run to its end.
pub fn run_offline(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    server_command(data)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The stdout of a command that must have succeeded (its stderr in the panic if not).
pub fn succeeded(output: Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The stderr of a command that must have failed.
pub fn failed(output: Output) -> String {
    assert!(
        !output.status.success(),
        "it succeeded: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).unwrap()
}

/// A new managed key of `scope` named `name`, made by `mnemo-server keys add` in `data`:
/// the key itself, from the command's output.
pub fn add_key(data: &Path, name: &str, scope: &str) -> String {
    let stdout = succeeded(run_offline(
        data,
        &["keys", "add", "--name", name, "--scope", scope],
        &[],
    ));
    stdout
        .split_whitespace()
        .find(|word| word.starts_with(crate::auth::KEY_PREFIX))
        .unwrap_or_else(|| panic!("no key in {stdout}"))
        .to_owned()
}

/// Every memory's hash and vector, from `export --vectors`, sorted by hash.
pub fn exported_vectors(data: &Path, env: &[(&str, &str)]) -> Vec<(String, Vec<f32>)> {
    let text = succeeded(run_offline(data, &["export", "--vectors"], env));
    let mut vectors: Vec<(String, Vec<f32>)> = text
        .lines()
        .map(|line| serde_json::from_str::<ExportedMemory>(line).unwrap())
        .map(|m| {
            (
                m.content_hash,
                m.embedding.expect("exported with --vectors"),
            )
        })
        .collect();
    vectors.sort_by(|a, b| a.0.cmp(&b.0));
    vectors
}

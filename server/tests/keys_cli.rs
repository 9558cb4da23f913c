//! The `mnemo-server keys` commands as separate processes, the way operators and scripts
//! run them: many at once on one data directory must not lose a key.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use mnemo_server::auth::{KEY_PREFIX, KeyFile, KeyRing, Scope};

/// How many `keys add` processes run at the same time, in each of two rounds.
const CONCURRENT: usize = 10;

/// `mnemo-server keys <args>` on `data_dir`, started but not waited for.
fn keys(data_dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mnemo-server"))
        .arg("keys")
        .args(args)
        .env("MNEMO_DATA_DIR", data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the mnemo-server binary starts")
}

fn succeeded(child: Child) -> String {
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&stderr));
    String::from_utf8(stdout).unwrap()
}

/// Two rounds of ten `keys add` processes started together all land in `keys.json`:
/// `keys list` shows every one, and every printed key authenticates with its scope.
#[test]
fn concurrent_adds_lose_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut added = Vec::new();
    for round in 0..2 {
        let children: Vec<(String, Scope, Child)> = (0..CONCURRENT)
            .map(|i| {
                let name = format!("machine-{round}-{i}");
                let scope = [Scope::Read, Scope::Write][i % 2];
                let child = keys(
                    dir.path(),
                    &["add", "--name", &name, "--scope", scope.as_str()],
                );
                (name, scope, child)
            })
            .collect();
        for (name, scope, child) in children {
            let printed = succeeded(child);
            let key = printed
                .split_whitespace()
                .find(|word| word.starts_with(KEY_PREFIX))
                .unwrap_or_else(|| panic!("no key in {printed}"))
                .to_owned();
            added.push((name, scope, key));
        }
    }

    let listed = succeeded(keys(dir.path(), &["list"]));
    let stored = KeyFile::new(dir.path()).list().unwrap();
    assert_eq!(stored.len(), added.len(), "{listed}");
    let ring = KeyRing::new(None, KeyFile::new(dir.path()));
    for (name, scope, key) in &added {
        assert!(
            listed.contains(name.as_str()),
            "{name} missing from\n{listed}"
        );
        assert_eq!(ring.authenticate(key), Some(*scope), "{name}");
    }
}

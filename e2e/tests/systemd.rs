//! The unit files in `systemd/` as systemd itself reads them: `systemd-analyze
//! verify` finds no problem (unknown keys and bad values are warnings it prints, so
//! the output must be empty too), `systemd-analyze security` rates their exposure low,
//! they start after the network with Litestream before Mnemo, and Litestream reads
//! the example configuration.
//!
//! No booted systemd is needed: both commands run offline against a root folder
//! holding the host's own units, the two unit files and the binaries they name.

use std::path::{Path, PathBuf};
use std::process::Command;

use mnemo_server::testing::workspace_binary;

const UNITS: [&str; 2] = ["mnemo-server.service", "mnemo-litestream.service"];

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn systemd_analyze() -> Command {
    assert!(
        Path::new("/usr/bin/systemd-analyze").exists(),
        "systemd-analyze is missing: run `make test-systemd` (Debian's systemd package)"
    );
    Command::new("/usr/bin/systemd-analyze")
}

/// A root folder as `--root=` wants it: the host's units (so `sysinit.target` and the
/// rest resolve), ours in /etc/systemd/system, and the programs in /usr/local/bin.
fn root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let status = Command::new("cp")
        .args(["-a", "/usr/lib/systemd/system"])
        .arg(root.path().join("system"))
        .status()
        .unwrap();
    assert!(status.success());
    let lib = root.path().join("usr/lib/systemd");
    std::fs::create_dir_all(&lib).unwrap();
    std::fs::rename(root.path().join("system"), lib.join("system")).unwrap();
    let etc = root.path().join("etc/systemd/system");
    std::fs::create_dir_all(&etc).unwrap();
    for unit in UNITS {
        std::fs::copy(repository().join("systemd").join(unit), etc.join(unit)).unwrap();
    }
    let bin = root.path().join("usr/local/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(workspace_binary("mnemo-server"), bin.join("mnemo-server")).unwrap();
    std::fs::copy(mnemo_e2e::litestream(), bin.join("litestream")).unwrap();
    root
}

/// `systemd-analyze verify` accepts both units without a word.
#[test]
fn units_pass_systemd_analyze_verify() {
    let root = root();
    let units: Vec<PathBuf> = UNITS
        .iter()
        .map(|u| root.path().join("etc/systemd/system").join(u))
        .collect();
    let output = systemd_analyze()
        .arg("verify")
        .arg(format!("--root={}", root.path().display()))
        .args(&units)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{said}");
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warned:\n{said}"
    );
}

/// Both units rate "OK" or better (exposure below 2 of 10) in `systemd-analyze
/// security`, offline.
#[test]
fn units_have_low_exposure() {
    let root = root();
    for unit in UNITS {
        let output = systemd_analyze()
            .args(["security", "--offline=true", "--no-pager"])
            .arg(format!("--root={}", root.path().display()))
            .arg(unit)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level"))
            .unwrap_or_else(|| panic!("no exposure level:\n{text}"));
        let score: f64 = line
            .split(':')
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        eprintln!("{unit}: exposure {score}");
        assert!(score < 2.0, "{line}");
    }
}

/// Mnemo starts after the network and after Litestream; Litestream restores before
/// it replicates and orders itself before Mnemo. Both run as the `mnemo` user and may
/// write only the data folder.
#[test]
fn units_start_in_order_as_their_user() {
    let read =
        |unit: &str| std::fs::read_to_string(repository().join("systemd").join(unit)).unwrap();
    let server = read("mnemo-server.service");
    let litestream = read("mnemo-litestream.service");
    let has = |text: &str, line: &str| text.lines().any(|l| l.trim() == line);
    assert!(has(
        &server,
        "After=network-online.target mnemo-litestream.service"
    ));
    assert!(has(&server, "Wants=network-online.target"));
    assert!(has(&litestream, "Before=mnemo-server.service"));
    assert!(has(&litestream, "After=network-online.target"));
    assert!(litestream.contains("ExecStartPre=/usr/local/bin/litestream restore"));
    for text in [&server, &litestream] {
        for line in [
            "User=mnemo",
            "ProtectSystem=strict",
            "ProtectHome=true",
            "NoNewPrivileges=true",
            "PrivateTmp=true",
            "ReadWritePaths=/var/lib/mnemo",
        ] {
            assert!(has(text, line), "{line}");
        }
        let writable: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ReadWritePaths="))
            .collect();
        assert_eq!(writable, ["ReadWritePaths=/var/lib/mnemo"]);
    }
}

/// Litestream reads the example configuration, and it names Mnemo's database.
#[test]
fn litestream_reads_the_example_configuration() {
    let output = Command::new(mnemo_e2e::litestream())
        .args(["databases", "-config"])
        .arg(repository().join("systemd/litestream.yml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(text.contains("/var/lib/mnemo/memories.db"), "{text}");
}

//! `scripts/install.sh` staged into a temp root: every piece lands where mount(8),
//! systemd, man and the shells look, the unit names the installed binary, and the
//! script says what it installed.

mod common;

use std::path::Path;

use common::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/install.sh");

#[test]
fn install_script_stages_binary_helper_unit_pages_and_completions() {
    let dest = tempdir();
    let d = dest.path();
    let out = run_timeout(
        120,
        "bash",
        &[SCRIPT, "--bin", BIN.as_str(), "--destdir", &path_str(d)],
    );
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    let bin = d.join("usr/local/bin/verfsnext");
    assert_eq!(
        std::fs::read(&bin).expect("installed binary"),
        std::fs::read(BIN.as_str()).expect("built binary")
    );
    let helper = d.join("sbin/mount.fuse.verfsnext");
    assert_eq!(
        std::fs::read_link(&helper).expect("helper symlink"),
        Path::new("/usr/local/bin/verfsnext")
    );
    let unit =
        std::fs::read_to_string(d.join("etc/systemd/system/verfsnext.service")).expect("unit");
    assert!(
        unit.contains("ExecStart=/usr/local/bin/verfsnext mount") && !unit.contains('@'),
        "{unit}"
    );
    for rel in [
        "usr/local/share/man/man1/verfsnext.1",
        "usr/local/share/man/man1/verfsnext-mount.1",
        "usr/local/share/bash-completion/completions/verfsnext",
        "usr/local/share/zsh/site-functions/_verfsnext",
        "usr/local/share/fish/vendor_completions.d/verfsnext.fish",
        "etc/verfsnext/config.toml.example",
    ] {
        let p = d.join(rel);
        assert!(
            std::fs::metadata(&p).is_ok_and(|m| m.len() > 0),
            "{rel} missing or empty"
        );
        let dir = Path::new("/").join(rel);
        let dir = path_str(dir.parent().expect("a directory"));
        assert!(
            said.contains(&format!("installed {dir}/")),
            "the script did not say it installed into {dir}: {said}"
        );
    }
    // Re-running upgrades in place and leaves a config.toml alone.
    std::fs::write(d.join("etc/verfsnext/config.toml"), "n_threads = 2\n").expect("config");
    let again = run_timeout(
        120,
        "bash",
        &[SCRIPT, "--bin", BIN.as_str(), "--destdir", &path_str(d)],
    );
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        std::fs::read_to_string(d.join("etc/verfsnext/config.toml")).expect("config"),
        "n_threads = 2\n"
    );
    let bad = run_timeout(30, "bash", &[SCRIPT, "--bogus"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--bogus"),
        "{bad:?}"
    );
}

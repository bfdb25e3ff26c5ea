//! Generated shell completions and man pages: bash accepts the completion script, the
//! pages are roff that renders, and every subcommand gets its own page.

mod common;

use common::*;

#[test]
fn bash_completion_script_is_sourced_without_error() {
    let out = run_timeout(30, BIN.as_str(), &["completions", "bash"]);
    assert!(out.status.success(), "{out:?}");
    let dir = tempdir();
    let script = dir.path().join("verfsnext.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let check = sh_ok(&format!(
        "bash -c 'source {} && complete -p verfsnext'",
        script.display()
    ));
    assert!(check.contains("_verfsnext"), "{check}");
    for shell in ["zsh", "fish", "elvish"] {
        let out = run_timeout(30, BIN.as_str(), &["completions", shell]);
        assert!(
            out.status.success() && out.stdout.len() > 500,
            "{shell}: {out:?}"
        );
    }
}

#[test]
fn man_pages_render_for_every_command() {
    let dir = tempdir();
    let out = run_timeout(30, BIN.as_str(), &["man", "--dir", &path_str(dir.path())]);
    assert!(out.status.success(), "{out:?}");
    for name in [
        "verfsnext",
        "verfsnext-mount",
        "verfsnext-crypt",
        "verfsnext-gc",
        "verfsnext-fsck",
        "verfsnext-scrub",
    ] {
        let page = dir.path().join(format!("{name}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(text.contains(".TH"), "{name}.1 is not a man page");
        if std::path::Path::new("/usr/bin/groff").exists() {
            let rendered = sh_ok(&format!("groff -man -Tutf8 {} 2>&1", page.display()));
            assert!(
                rendered.contains(&format!("{name}(1)")),
                "{name}.1 renders as:\n{rendered}"
            );
        } else {
            eprintln!("groff missing: {name}.1 checked as roff text only");
        }
    }
    let crypt = std::fs::read_to_string(dir.path().join("verfsnext-crypt.1")).unwrap();
    assert!(
        crypt.contains("change\\-password"),
        "crypt page lacks its flags"
    );
}

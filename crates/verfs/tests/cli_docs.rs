//! Generated shell completions and man pages: bash accepts the completion script, the
//! pages render with `man -l`, every subcommand gets its own page, and every flag of
//! every command has help text.

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
        "verfsnext-status",
        "verfsnext-crypt",
        "verfsnext-gc",
        "verfsnext-fsck",
        "verfsnext-scrub",
    ] {
        let page = dir.path().join(format!("{name}.1"));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{name}.1: {e}"));
        assert!(text.contains(".TH"), "{name}.1 is not a man page");
        // As a reader would: `man -l` (man-db and groff are installed by .ci/run).
        let rendered = sh_ok(&format!(
            "MANWIDTH=100 man -P cat -l {} 2>&1",
            page.display()
        ));
        assert!(
            rendered.contains(&format!("{name}(1)")) && rendered.contains("SYNOPSIS"),
            "{name}.1 renders as:\n{rendered}"
        );
    }
    let crypt = std::fs::read_to_string(dir.path().join("verfsnext-crypt.1")).unwrap();
    assert!(
        crypt.contains("change\\-password"),
        "crypt page lacks its flags"
    );
}

#[test]
fn every_flag_of_every_command_is_explained() {
    let commands: &[&[&str]] = &[
        &[],
        &["mount"],
        &["stats"],
        &["status"],
        &["snapshot", "create"],
        &["snapshot", "list"],
        &["snapshot", "delete"],
        &["snapshot", "diff"],
        &["gc", "run"],
        &["gc", "status"],
        &["fsck"],
        &["scrub"],
        &["scrub", "run"],
        &["scrub", "status"],
        &["scrub", "cancel"],
        &["crypt"],
        &["completions"],
        &["man"],
    ];
    for cmd in commands {
        let mut args: Vec<&str> = cmd.to_vec();
        args.push("--help");
        let out = run_timeout(30, BIN.as_str(), &args);
        assert!(out.status.success(), "{cmd:?}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        // Each option line (`  -x, --long <V>  help` or `  --long  help`) carries text
        // after the flag, on the line or the next one.
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if !(t.starts_with("--") || (t.starts_with('-') && t.len() > 1)) {
                continue;
            }
            let same_line = t.split("  ").filter(|p| !p.trim().is_empty()).count() > 1;
            let next_line = lines
                .get(i + 1)
                .is_some_and(|n| n.starts_with("          ") && !n.trim().is_empty());
            assert!(
                same_line || next_line,
                "{cmd:?}: flag without help: {l}\n{text}"
            );
        }
    }
}

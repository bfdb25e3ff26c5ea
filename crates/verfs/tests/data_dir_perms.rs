//! The data dir does not leak file bytes to other local users: the daemon creates it
//! and everything in it owner-only whatever its umask, and refuses to start on a data
//! dir, subdirectory or file that group or others can access, naming the path and the
//! `chmod` that fixes it (`data_dir_group_access` allows a read-only group, never
//! others). Needs root and the `nobody` user.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// Runs `cmd` as `nobody` (no supplementary groups), under a timeout.
fn as_nobody(cmd: &str) -> Output {
    sh(&format!(
        "setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c '{cmd}'"
    ))
}

/// Every directory and file under `root`, with its permission bits (root included).
fn modes(root: &Path) -> Vec<(PathBuf, u32)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        out.push((p.clone(), meta.permissions().mode() & 0o7777));
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
    out
}

/// Asserts that nothing under the data dir has a bit of `refused`.
fn assert_closed(data: &Path, refused: u32, when: &str) {
    let all = modes(data);
    assert!(all.len() > 5, "{when}: data dir nearly empty: {all:?}");
    let open: Vec<String> = all
        .iter()
        .filter(|(_, m)| m & refused != 0)
        .map(|(p, m)| format!("{} {m:04o}", p.display()))
        .collect();
    assert!(
        open.is_empty(),
        "{when}: open to group or others: {open:#?}"
    );
}

/// Paths, modes, sizes, mtimes and hashes of everything in the data dir.
fn snapshot(data: &str) -> String {
    sh_ok(&format!(
        "cd {data} && find . -printf '%p %m %s %T@\\n' | sort && \
         find . -type f -print0 | sort -z | xargs -0 -r sha256sum"
    ))
}

/// Starts the daemon on `fs` expecting a refusal; returns its single error line and
/// checks that nothing was mounted and the data dir was left exactly as it was.
fn refused(fs: &TestFs) -> String {
    let data = path_str(&fs.data);
    let before = snapshot(&data);
    let out = fs
        .command("timeout")
        .args(["-k", "5", "30", BIN.as_str(), "mount", "--data-dir", &data])
        .arg(&fs.mnt)
        .output()
        .expect("run verfsnext mount");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        matches!(out.status.code(), Some(c) if c != 0 && c != 124 && c != 137),
        "mount on an open data dir: {}; stderr:\n{stderr}",
        out.status
    );
    assert_eq!(mount_fstype(&fs.mnt), None, "mounted on an open data dir");
    assert_eq!(
        snapshot(&data),
        before,
        "refusing startup changed the data dir"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("verfsnext: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "not one error line:\n{stderr}");
    errors[0].to_owned()
}

/// A clean run that stores a file, so the data dir has packs and metadata.
fn populated() -> TestFs {
    let mut fs = TestFs::new();
    fs.start();
    sh_ok(&format!("cp /etc/hosts {}", fs.m("h")));
    fs.stop();
    fs
}

#[test]
fn a_0600_files_bytes_are_not_readable_by_nobody_in_the_data_dir() {
    let mut fs = TestFs::new();
    // Let `nobody` reach the data dir: only its own permissions may keep them out. The
    // daemon creates the data dir itself, under the test's umask (022).
    sh_ok(&format!("chmod 755 {}", fs.dir().display()));
    std::fs::remove_dir(&fs.data).unwrap();
    fs.start();
    let mode = std::fs::metadata(&fs.data).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "data dir created by the daemon");
    let marker = format!(
        "VERFS-SECRET-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    );
    // Random bytes around the marker: zstd cannot shrink them, so the pack holds the
    // marker in plain form and the root control below can find it.
    let src = fs.t("secret.src");
    write_random(&src, 1 << 20, 77);
    for off in [1000, 300_000, 700_000] {
        sh_ok(&format!(
            "printf %s {marker} | dd of={src} bs=1 seek={off} conv=notrunc status=none"
        ));
    }
    let secret = fs.m("secret");
    sh_ok(&format!(
        "umask 077 && dd if={src} of={secret} bs=64k conv=fsync status=none && rm {src}"
    ));
    assert_eq!(sh_ok(&format!("stat -c %a {secret}")).trim(), "600");
    let data = path_str(&fs.data);

    for when in ["while mounted", "after a clean stop"] {
        // The control: the bytes are in the data dir in plain form.
        let found = sh_ok(&format!("grep -rlaF {marker} {data}"));
        assert!(
            found.contains("/packs/"),
            "{when}: marker not in a pack: {found}"
        );
        // The mount's permissions keep nobody out...
        if when == "while mounted" {
            let out = as_nobody(&format!("cat {secret}"));
            assert!(!out.status.success(), "{when}: nobody read the 0600 file");
        }
        // ...and so does the data dir.
        // `-a -l`: a match is a file name on stdout (a binary match would otherwise be
        // a note on stderr, and the exit status is 2 on any unreadable entry).
        let out = as_nobody(&format!("grep -rlaF {marker} {data}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.stdout.is_empty() && !err.contains("matches"),
            "{when}: nobody found the marker in: {}{err}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(
            err.contains("Permission denied"),
            "{when}: grep as nobody: {err}"
        );
        let out = as_nobody(&format!("ls {data}"));
        assert!(
            !out.status.success() && out.stdout.is_empty(),
            "{when}: nobody listed the data dir"
        );
        assert_closed(&fs.data, 0o077, when);
        if when == "while mounted" {
            fs.stop();
        }
    }
    fs.assert_no_panic();
}

#[test]
fn startup_refuses_an_open_data_dir_and_names_the_chmod() {
    let mut fs = populated();
    let data = path_str(&fs.data);
    sh_ok(&format!("chmod 0755 {data}"));
    let line = refused(&fs);
    let want = format!(
        "data dir {data} is accessible by group or others (mode 0755); run: chmod 0700 {data}"
    );
    assert!(line.ends_with(&want), "{line}\nwanted: {want}");
    // The named command is the fix.
    let fix = line.rsplit("run: ").next().unwrap();
    sh_ok(fix);
    fs.start();
    assert_eq!(sha256(&fs.m("h")), sha256("/etc/hosts"));
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn startup_refuses_an_open_subdirectory_or_file() {
    let mut fs = populated();
    let data = path_str(&fs.data);
    let packs = format!("{data}/packs");
    sh_ok(&format!("chmod 0755 {packs}"));
    let line = refused(&fs);
    assert!(
        line.ends_with(&format!(
            "data dir {data}: {packs} is accessible by group or others (mode 0755); run: chmod 0700 {packs}"
        )),
        "{line}"
    );
    sh_ok(&format!("chmod 0700 {packs}"));

    // A pack readable by others, and a metadata dir too: the fix is recursive.
    let pack = path_str(&fs.packs()[0]);
    sh_ok(&format!("chmod 0644 {pack} && chmod 0711 {data}/meta"));
    let line = refused(&fs);
    assert!(line.contains("and 1 more entries in it"), "{line}");
    assert!(
        line.ends_with(&format!("run: chmod -R go-rwx {data}")),
        "{line}"
    );
    sh_ok(&format!("chmod -R go-rwx {data}"));
    fs.start();
    assert_eq!(sha256(&fs.m("h")), sha256("/etc/hosts"));
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn group_access_allows_a_read_only_group_but_never_others() {
    let mut fs = TestFs::new();
    let config = fs.dir().join("config.toml");
    std::fs::write(&config, "data_dir_group_access = \"yes\"\n").unwrap();
    let line = refused(&fs);
    assert!(
        line.contains("data_dir_group_access") && line.contains("boolean"),
        "{line}"
    );

    std::fs::write(&config, "data_dir_group_access = true\n").unwrap();
    let data = path_str(&fs.data);
    sh_ok(&format!("chmod 0750 {data}"));
    fs.start();
    sh_ok(&format!("cp /etc/hosts {}", fs.m("h")));
    fs.stop();
    assert_closed(&fs.data, 0o027, "with group access");
    let pack = &fs.packs()[0];
    let mode = std::fs::metadata(pack).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640, "pack mode with group access");

    sh_ok(&format!("chmod 0755 {data}"));
    let line = refused(&fs);
    assert!(
        line.ends_with(&format!(
            "data dir {data} is accessible by others or group writers (mode 0755); run: chmod 0750 {data}"
        )),
        "{line}"
    );
    // Without group access the same 0750 data dir is refused.
    sh_ok(&format!("chmod 0750 {data}"));
    std::fs::remove_file(&config).unwrap();
    let line = refused(&fs);
    assert!(line.contains("(mode 0750"), "{line}");
    assert!(
        line.ends_with(&format!("run: chmod -R go-rwx {data}")),
        "{line}"
    );
    fs.assert_no_panic();
}

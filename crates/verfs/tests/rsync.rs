//! The seed's rsync integration test: only Linux commands touch the filesystem, every
//! command runs under `timeout 120` (the harness fails the test on a timeout).

mod common;

use std::os::unix::ffi::OsStrExt;

use common::*;

/// Builds a source tree outside the mount: mixed sizes, empty files, nested dirs,
/// symlinks (one dangling), hard links, xattrs, ACLs, sparse files and odd names.
fn build_source(root: &str) {
    sh_ok(&format!(
        "mkdir -p {root}/a/b/c {root}/empty_dir {root}/sp\\ ace && cd {root} && \
         printf 'hello\\n' > a/hello.txt && : > a/empty && \
         head -c 3000000 /dev/urandom > a/b/big.bin && head -c 70000 /dev/urandom > a/b/c/mid.bin && \
         seq 1 20000 > a/b/c/numbers.txt && ln a/hello.txt a/hardlink && ln -s hello.txt a/link && \
         ln -s ../nowhere a/dangling && ln -s b/c a/dirlink && \
         echo uni > 'sp ace/ünïcødé ✓.txt' && \
         setfattr -n user.note -v 'first value' a/hello.txt && setfattr -n user.bin -v 0x00ff10 a/b/big.bin && \
         setfacl -m u:1234:r-- a/b/c/mid.bin && setfacl -d -m g:55:rwx a/b && \
         truncate -s 5M a/sparse && printf 'tail' | dd of=a/sparse bs=1 seek=4000000 conv=notrunc status=none && \
         chmod 600 a/b/c/numbers.txt && chmod 1777 empty_dir && touch -d '2001-02-03 04:05:06' a/empty"
    ));
    let long = "L".repeat(255);
    sh_ok(&format!("echo long > {root}/{long}"));
    // A name that is not UTF-8.
    let mut raw = root.as_bytes().to_vec();
    raw.extend_from_slice(b"/raw-\xff\xfe");
    std::fs::write(std::ffi::OsStr::from_bytes(&raw), b"raw name\n").expect("non-UTF-8 name");
}

/// Size, mode, link count, mtime (whole seconds: what rsync -a keeps everywhere),
/// symlink target, xattrs and ACLs of a tree.
fn metadata(root: &str) -> String {
    sh_ok(&format!(
        "cd {root} && (find . -mindepth 1 ! -type d -printf '%p %s %m %n %Ts %l\\n' | sort && \
         find . -mindepth 1 -type d -printf '%p dir %m %n %Ts\\n' | sort && \
         getfattr -R -d -m - --absolute-names -h . 2>/dev/null | grep -v '^$' | sort; \
         getfacl -R -p -c . 2>/dev/null | sort) | cat -v"
    ))
}

fn checksums(root: &str) -> String {
    sh_ok(&format!(
        "cd {root} && find . -type f -print0 | sort -z | xargs -0 sha256sum | cat -v"
    ))
}

#[test]
fn rsync_round_trip_remount_delete_remount() {
    let mut fs = TestFs::new();
    fs.start();
    let src = fs.t("src");
    build_source(&src);
    let dst = fs.m("t");
    sh_ok(&format!("rsync -aHAX --delete {src}/ {dst}/"));
    let (want_sums, want_meta) = (checksums(&src), metadata(&src));
    assert_eq!(checksums(&dst), want_sums, "contents differ after rsync");
    assert_eq!(metadata(&dst), want_meta, "metadata differs after rsync");
    assert_eq!(
        sh_ok(&format!("rsync -aHAXn --itemize-changes {src}/ {dst}/")),
        ""
    );
    assert_eq!(sh_ok(&format!("stat -c %h {dst}/a/hello.txt")).trim(), "2");
    assert_eq!(
        sh_ok(&format!("readlink {dst}/a/dangling")).trim(),
        "../nowhere"
    );

    fs.stop();
    fs.start();
    assert_eq!(checksums(&dst), want_sums, "contents differ after remount");
    assert_eq!(metadata(&dst), want_meta, "metadata differs after remount");
    assert_eq!(
        sh_ok(&format!("rsync -aHAXn --itemize-changes {src}/ {dst}/")),
        ""
    );

    sh_ok(&format!("rm -rf {dst}"));
    assert_eq!(sh_ok(&format!("ls -A {}", fs.m(""))).trim(), "");
    assert!(
        !sh(&format!("stat {dst}")).status.success(),
        "stat of deleted tree succeeded"
    );
    fs.stop();
    fs.start();
    assert_eq!(sh_ok(&format!("ls -A {}", fs.m(""))).trim(), "");
    assert!(!sh(&format!("stat {dst}/a/hello.txt")).status.success());
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn rsync_workflows_inplace_append_delete_checksum() {
    let mut fs = TestFs::new();
    fs.start();
    let src = fs.t("src");
    build_source(&src);
    let dst = fs.m("t");
    sh_ok(&format!("rsync -aHAX {src}/ {dst}/"));
    let same = |fs: &TestFs| {
        assert_eq!(checksums(&fs.m("t")), checksums(&src));
        assert_eq!(
            sh_ok(&format!(
                "rsync -aHAXn --itemize-changes {src}/ {}/",
                fs.m("t")
            )),
            ""
        );
    };
    // --inplace update of a modified file. Each change also moves the mtime to another
    // second: rsync's quick check compares whole seconds and skips same-second changes.
    sh_ok(&format!(
        "printf 'changed' | dd of={src}/a/b/big.bin bs=1 seek=1000 conv=notrunc status=none && \
         touch -d '2020-01-01 00:00:01' {src}/a/b/big.bin"
    ));
    sh_ok(&format!("rsync -aHAX --inplace {src}/ {dst}/"));
    same(&fs);
    // --append-verify on a grown file.
    sh_ok(&format!(
        "head -c 100000 /dev/urandom >> {src}/a/b/c/mid.bin && \
         touch -d '2020-01-01 00:00:02' {src}/a/b/c/mid.bin"
    ));
    sh_ok(&format!("rsync -aHAX --append-verify {src}/ {dst}/"));
    same(&fs);
    // --delete removes an extra file; default temp-file-plus-rename for a changed one.
    sh_ok(&format!(
        "echo extra > {dst}/extra && echo new > {src}/a/hello.txt && \
         touch -d '2020-01-01 00:00:03' {src}/a/hello.txt"
    ));
    sh_ok(&format!("rsync -aHAX --delete {src}/ {dst}/"));
    assert!(
        !sh(&format!("stat {dst}/extra")).status.success(),
        "--delete left extra"
    );
    same(&fs);
    // --checksum finds a change that keeps size and mtime.
    sh_ok(&format!(
        "cp -p {src}/a/b/c/numbers.txt {t} && sed -i 's/^1$/9/' {src}/a/b/c/numbers.txt && touch -r {t} {src}/a/b/c/numbers.txt",
        t = fs.t("stamp")
    ));
    sh_ok(&format!("rsync -aHAX --checksum {src}/ {dst}/"));
    same(&fs);
    // --sparse keeps holes.
    sh_ok(&format!("rsync -aHAX --sparse {src}/ {}/", fs.m("sparse")));
    assert_eq!(checksums(&fs.m("sparse")), checksums(&src));
    fs.stop();
    fs.start();
    same(&fs);
    fs.stop();
    fs.assert_no_panic();
}

//! Extended attributes through the mount: set/get/list/remove, flags, size probing,
//! namespaces, persistence across remount.

mod common;

use std::ffi::CString;

use common::*;

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

/// getxattr(2) with a caller-chosen buffer size; returns (result, errno).
fn getxattr(path: &str, name: &str, size: usize) -> (isize, i32, Vec<u8>) {
    let mut buf = vec![0u8; size];
    let (p, n) = (c(path), c(name));
    // SAFETY: p and n are valid C strings; buf is valid for `size` bytes (or null for 0).
    let rc = unsafe {
        libc::getxattr(
            p.as_ptr(),
            n.as_ptr(),
            if size == 0 {
                std::ptr::null_mut()
            } else {
                buf.as_mut_ptr().cast()
            },
            size,
        )
    };
    let err = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
    (rc, err, buf)
}

fn setxattr(path: &str, name: &str, value: &[u8], flags: i32) -> (i32, i32) {
    let (p, n) = (c(path), c(name));
    // SAFETY: valid C strings and a value slice of the given length.
    let rc = unsafe {
        libc::setxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    (
        rc,
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    )
}

#[test]
fn xattrs_follow_linux_semantics_and_persist() {
    let mut fs = TestFs::new();
    fs.start();
    let f = fs.m("f");
    sh_ok(&format!("echo hi > {f}"));
    sh_ok(&format!("setfattr -n user.color -v blue {f}"));
    sh_ok(&format!("setfattr -n trusted.secret -v 42 {f}"));
    sh_ok(&format!("setfattr -n security.label -v lbl {f}"));
    let dump = sh_ok(&format!("getfattr -d -m - {f}"));
    for want in [
        "user.color=\"blue\"",
        "trusted.secret=\"42\"",
        "security.label=\"lbl\"",
    ] {
        assert!(dump.contains(want), "missing {want} in {dump}");
    }
    // Size probe: 0 gives the length, too small gives ERANGE.
    let (n, _, _) = getxattr(&f, "user.color", 0);
    assert_eq!(n, 4);
    let (n, err, _) = getxattr(&f, "user.color", 2);
    assert_eq!((n, err), (-1, libc::ERANGE));
    let (n, _, buf) = getxattr(&f, "user.color", 16);
    assert_eq!(&buf[..n as usize], b"blue");
    let (n, err, _) = getxattr(&f, "user.missing", 16);
    assert_eq!((n, err), (-1, libc::ENODATA));
    // XATTR_CREATE on an existing name, XATTR_REPLACE on a missing one.
    assert_eq!(
        setxattr(&f, "user.color", b"red", libc::XATTR_CREATE),
        (-1, libc::EEXIST)
    );
    assert_eq!(
        setxattr(&f, "user.none", b"x", libc::XATTR_REPLACE),
        (-1, libc::ENODATA)
    );
    assert_eq!(setxattr(&f, "user.color", b"red", libc::XATTR_REPLACE).0, 0);
    // Binary values and empty values.
    assert_eq!(setxattr(&f, "user.bin", &[0, 255, 1], 0).0, 0);
    assert_eq!(setxattr(&f, "user.empty", b"", 0).0, 0);
    sh_ok(&format!("setfattr -x security.label {f}"));
    let out = sh(&format!("setfattr -x user.never {f}"));
    assert!(!out.status.success(), "removing a missing xattr must fail");
    // Directories and symlink targets carry xattrs too.
    sh_ok(&format!(
        "mkdir {d} && setfattr -n user.d -v 1 {d}",
        d = fs.m("d")
    ));

    let check = |fs: &TestFs| {
        let f = fs.m("f");
        let (n, _, buf) = getxattr(&f, "user.color", 16);
        assert_eq!(&buf[..n as usize], b"red");
        let (n, _, buf) = getxattr(&f, "user.bin", 16);
        assert_eq!(&buf[..n as usize], &[0, 255, 1]);
        assert_eq!(getxattr(&f, "user.empty", 16).0, 0);
        assert_eq!(getxattr(&f, "security.label", 16).1, libc::ENODATA);
        let names = sh_ok(&format!("getfattr -m - --absolute-names {f}"));
        assert!(
            names.contains("user.bin") && names.contains("trusted.secret"),
            "{names}"
        );
        assert!(sh_ok(&format!("getfattr -n user.d --only-values {}", fs.m("d"))).contains('1'));
    };
    check(&fs);
    fs.stop();
    fs.start();
    check(&fs);
    // Removing the file removes its attributes with it; a new file has none.
    sh_ok(&format!("rm {f} && touch {f}"));
    assert_eq!(sh_ok(&format!("getfattr -d -m - {f}")).trim(), "");
    fs.stop();
    fs.assert_no_panic();
}

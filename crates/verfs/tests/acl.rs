//! POSIX ACLs through the mount, compared with the same commands on the native disk:
//! access ACLs, default-ACL inheritance for files and directories, chmod and the mask,
//! umask without a default ACL, persistence across remount.

mod common;

use common::*;

/// Runs the same ACL scenario under `root` and returns what getfacl/stat report.
fn scenario(root: &str) -> String {
    sh_ok(&format!(
        "cd {root} && umask 022 && mkdir d && setfacl -d -m u:1234:rwx,g:55:r-x d && \
         touch d/f && mkdir d/sub && touch d/sub/g && mkdir plain && touch plain/p && \
         touch a && setfacl -m u:4321:rw- a && chmod 640 a && mkdir -m 700 private"
    ));
    sh_ok(&format!(
        "cd {root} && for p in d d/f d/sub d/sub/g plain plain/p a private; do \
         echo \"== $p $(stat -c %a $p)\"; getfacl -cp $p; done"
    ))
}

#[test]
fn acls_behave_like_the_native_filesystem() {
    let mut fs = TestFs::new();
    fs.start();
    let native_root = fs.t("native");
    sh_ok(&format!("mkdir {native_root}"));
    let expected = scenario(&native_root);
    let mounted_root = fs.m("t");
    sh_ok(&format!("mkdir {mounted_root}"));
    let got = scenario(&mounted_root);
    assert_eq!(got, expected, "ACLs differ from the native filesystem");
    // The kernel enforces them: user 4321 may read `a` through its ACL entry.
    sh_ok(&format!("chmod 755 {mounted_root} && chmod 644 {mounted_root}/a && setfacl -m u:4321:rw- {mounted_root}/a"));
    let out = sh(&format!(
        "setpriv --reuid=4321 --regid=4321 --clear-groups cat {mounted_root}/a"
    ));
    assert!(
        out.status.success(),
        "ACL entry did not grant read: {out:?}"
    );
    let before = sh_ok(&format!("getfacl -cpR {mounted_root}"));
    fs.stop();
    fs.start();
    assert_eq!(
        sh_ok(&format!("getfacl -cpR {mounted_root}")),
        before,
        "ACLs changed across remount"
    );
    fs.stop();
    fs.assert_no_panic();
}

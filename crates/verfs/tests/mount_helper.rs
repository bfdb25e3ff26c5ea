//! The mount(8) helper: `mount -t fuse.TYPE DATA MNT -o ...`, an fstab line mounted with
//! `mount MNT`, `umount` ending the detached daemon after its final sync, `-o ro`
//! answering EROFS, and a bad option refused in one line naming it.
//!
//! Each test installs the binary as its own helper `/sbin/mount.fuse.vtest-PID-N`
//! (removed again on drop), so a real installation's `mount.fuse.verfsnext` is never
//! touched and tests running in parallel do not share one.

mod common;

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::*;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A helper symlink and the filesystem it mounts; dropping it unmounts, kills a daemon
/// left behind and removes the symlink.
struct Helper {
    fs: TestFs,
    link: PathBuf,
    fstype: String,
    config: PathBuf,
}

impl Helper {
    fn new() -> Helper {
        let fs = TestFs::new();
        let name = format!(
            "vtest-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let link = PathBuf::from(format!("/sbin/mount.fuse.{name}"));
        let _ = std::fs::remove_file(&link);
        symlink(BIN.as_str(), &link).expect("install the helper symlink");
        let config = fs.dir().join("config.toml");
        std::fs::write(&config, "gc_idle_min_ms = 0\nlog_level = \"info\"\n").expect("config");
        Helper {
            fs,
            link,
            fstype: format!("fuse.{name}"),
            config,
        }
    }

    /// `mount -t fuse.NAME DATA MNT -o config=...,log_file=...,EXTRA`.
    fn mount(&self, extra: &str) -> Output {
        let mut opts = format!(
            "config={},log_file={}",
            self.config.display(),
            self.fs.t("helper.log")
        );
        if !extra.is_empty() {
            opts = format!("{opts},{extra}");
        }
        self.fs
            .command("timeout")
            .args(["60", "mount", "-t", &self.fstype])
            .arg(&self.fs.data)
            .arg(&self.fs.mnt)
            .args(["-o", &opts])
            .output()
            .expect("run mount")
    }

    fn mount_ok(&self, extra: &str) {
        let out = self.mount(extra);
        assert!(
            out.status.success(),
            "mount failed: {out:?}\nlog: {}",
            self.log()
        );
        // Readiness was signalled: mounted the moment mount(8) returns, no polling.
        assert_eq!(mount_fstype(&self.fs.mnt).as_deref(), Some(FSTYPE));
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.fs.t("helper.log")).unwrap_or_default()
    }

    /// The daemon's pid from `verfsnext status`.
    fn daemon_pid(&self) -> i32 {
        let out = self
            .fs
            .command("timeout")
            .args(["60", BIN.as_str(), "status", "--json", "--data-dir"])
            .arg(&self.fs.data)
            .output()
            .expect("run status");
        assert!(out.status.success(), "{out:?}");
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
        s["pid"].as_i64().expect("pid") as i32
    }

    /// `umount MNT`, then waits for the daemon to finish its final sync and exit.
    fn umount_and_wait(&self, pid: i32) {
        let out = run_timeout(60, "umount", &[&path_str(&self.fs.mnt)]);
        assert!(out.status.success(), "umount: {out:?}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "daemon {pid} still running after umount"
            );
            sleep(Duration::from_millis(50));
        }
        assert!(
            self.log().contains("clean shutdown complete"),
            "log: {}",
            self.log()
        );
    }
}

/// Whether `pid` runs: exists and is not a zombie (a detached daemon is reparented to
/// PID 1, which in a container may not reap it).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

impl Drop for Helper {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- helper daemon log ----\n{}", self.log());
        }
        if mount_fstype(&self.fs.mnt).is_some() {
            let _ = run_timeout(10, "fusermount3", &["-uz", &path_str(&self.fs.mnt)]);
        }
        // A detached daemon of this data dir still alive after the unmount.
        let name = self
            .link
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        if let Some(name) = name {
            let _ = run_timeout(10, "pkill", &["-9", "-f", &format!("{name} ")]);
        }
        let _ = std::fs::remove_file(&self.link);
    }
}

#[test]
fn mount_t_with_options_then_umount_syncs_and_exits() {
    let h = Helper::new();
    h.mount_ok("n_threads=2,noatime,nosuid,nodev,nofail,_netdev,x-systemd.device-timeout=5");
    let line = std::fs::read_to_string("/proc/mounts").expect("mounts");
    let entry = line
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(path_str(&h.fs.mnt).as_str()))
        .expect("mount entry");
    // The data dir is the source, so `mount -a` recognises the line as mounted.
    assert!(
        entry.starts_with(&format!("{} ", path_str(&h.fs.data))),
        "{entry}"
    );
    assert!(
        entry.contains("nosuid") && entry.contains("nodev"),
        "{entry}"
    );
    let pid = h.daemon_pid();
    let src = h.fs.t("src.bin");
    write_random(&src, 3 << 20, 7);
    // No fsync: the final sync at umount must make it durable.
    sh_ok(&format!("cp {src} {}", h.fs.m("f.bin")));
    h.umount_and_wait(pid);
    let mut fs = TestFs::with_data(&h.fs.data);
    fs.assert_fsck_clean();
    fs.start();
    assert_eq!(sha256(&fs.m("f.bin")), sha256(&src));
    fs.stop();
}

#[test]
fn fstab_line_mounts_with_mount_mountpoint_once() {
    let h = Helper::new();
    let fstab = h.fs.dir().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# test fstab\n{} {} {} config={},log_file={},n_threads=2,nofail 0 0\n",
            path_str(&h.fs.data),
            path_str(&h.fs.mnt),
            h.fstype,
            h.config.display(),
            h.fs.t("helper.log")
        ),
    )
    .expect("write fstab");
    let fstab = path_str(&fstab);
    sh_ok(&format!(
        "timeout 60 mount --fstab {fstab} {}",
        path_str(&h.fs.mnt)
    ));
    assert_eq!(mount_fstype(&h.fs.mnt).as_deref(), Some(FSTYPE));
    // `mount -a` again sees it mounted and mounts nothing twice.
    sh_ok(&format!("timeout 60 mount --fstab {fstab} -a"));
    let mounts = std::fs::read_to_string("/proc/mounts").expect("mounts");
    let n = mounts
        .lines()
        .filter(|l| l.split(' ').nth(1) == Some(path_str(&h.fs.mnt).as_str()))
        .count();
    assert_eq!(n, 1, "{mounts}");
    std::fs::write(h.fs.mnt.join("hello"), b"hi\n").expect("write through the mount");
    let pid = h.daemon_pid();
    h.umount_and_wait(pid);
}

#[test]
fn read_only_mount_refuses_changes_with_erofs() {
    let h = Helper::new();
    h.mount_ok("");
    std::fs::write(h.fs.mnt.join("keep"), b"kept\n").expect("write");
    std::fs::create_dir(h.fs.mnt.join("dir")).expect("mkdir");
    h.umount_and_wait(h.daemon_pid());

    h.mount_ok("ro");
    assert!(std::fs::read_to_string("/proc/mounts")
        .expect("mounts")
        .lines()
        .any(|l| l.contains(&path_str(&h.fs.mnt))
            && l.split(' ').nth(3).is_some_and(|o| o.starts_with("ro,"))));
    assert_eq!(
        std::fs::read(h.fs.mnt.join("keep")).expect("read"),
        b"kept\n"
    );
    let erofs = |r: std::io::Result<()>, what: &str| {
        let e = r.expect_err(what);
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
    };
    erofs(
        std::fs::OpenOptions::new()
            .write(true)
            .open(h.fs.mnt.join("keep"))
            .map(drop),
        "open for writing",
    );
    erofs(std::fs::write(h.fs.mnt.join("new"), b"x"), "create");
    erofs(std::fs::create_dir(h.fs.mnt.join("d2")), "mkdir");
    erofs(std::fs::remove_file(h.fs.mnt.join("keep")), "unlink");
    erofs(
        std::fs::rename(h.fs.mnt.join("dir"), h.fs.mnt.join("dir2")),
        "rename",
    );
    let out = h.fs.snapshot_cmd(&["create", "s1"]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("read-only"),
        "{out:?}"
    );
    let pid = h.daemon_pid();
    h.umount_and_wait(pid);
    // Nothing was written: the file and the tree are as before, and fsck is clean.
    let mut fs = TestFs::with_data(&h.fs.data);
    fs.assert_fsck_clean();
    fs.start();
    assert_eq!(sh_ok(&format!("ls {}", fs.m(""))), "dir\nkeep\n");
    fs.stop();
}

#[test]
fn a_bad_option_is_one_line_naming_it_and_mounts_nothing() {
    let h = Helper::new();
    for (opt, needle) in [
        ("n_thread=3", "`n_thread=3`"),
        ("bogus", "`bogus`"),
        ("n_threads=lots", "`n_threads=lots`"),
    ] {
        let out = h.mount(opt);
        assert!(!out.status.success(), "{opt}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let ours: Vec<&str> = err
            .lines()
            .filter(|l| l.starts_with("verfsnext:"))
            .collect();
        assert_eq!(ours.len(), 1, "{opt}: {err}");
        assert!(ours[0].contains(needle), "{opt}: {err}");
        assert!(mount_fstype(&h.fs.mnt).is_none(), "{opt} mounted something");
    }
}

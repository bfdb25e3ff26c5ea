//! POSIX semantics through the mount, one test per family: links, symlinks, directory
//! link counts, renameat2 flags, special files, name limits and locks.

mod common;

use std::ffi::CString;

use common::*;

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL")
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn hard_links_symlinks_and_directory_link_counts() {
    let mut fs = TestFs::new();
    fs.start();
    let (f, l) = (fs.m("f"), fs.m("l"));
    sh_ok(&format!("echo data > {f} && ln {f} {l}"));
    assert_eq!(sh_ok(&format!("stat -c %h {f}")).trim(), "2");
    sh_ok(&format!("rm {f}"));
    assert_eq!(sh_ok(&format!("stat -c %h {l}")).trim(), "1");
    assert_eq!(sh_ok(&format!("cat {l}")), "data\n");
    // Symlinks up to PATH_MAX - 1 bytes; longer targets are ENAMETOOLONG.
    let long = "x/".repeat(2047) + "y";
    assert_eq!(long.len(), 4095);
    let (target, link) = (c(&long), c(&fs.m("long")));
    // SAFETY: both are valid C strings.
    assert_eq!(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }, 0);
    assert_eq!(sh_ok(&format!("readlink {}", fs.m("long"))).trim(), long);
    let too_long = c(&("z".repeat(4096)));
    let link2 = c(&fs.m("long2"));
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::symlink(too_long.as_ptr(), link2.as_ptr()) },
        -1
    );
    assert_eq!(errno(), libc::ENAMETOOLONG);
    // Directory nlink = 2 + subdirectories.
    let d = fs.m("d");
    sh_ok(&format!("mkdir -p {d}/a {d}/b {d}/c && touch {d}/file"));
    assert_eq!(sh_ok(&format!("stat -c %h {d}")).trim(), "5");
    sh_ok(&format!("rmdir {d}/b && mv {d}/c {}", fs.m("c")));
    assert_eq!(sh_ok(&format!("stat -c %h {d}")).trim(), "3");
    fs.stop();
    fs.start();
    assert_eq!(sh_ok(&format!("stat -c %h {d}")).trim(), "3");
    assert_eq!(sh_ok(&format!("readlink {}", fs.m("long"))).trim(), long);
    fs.stop();
    fs.assert_no_panic();
}

fn renameat2(from: &str, to: &str, flags: u32) -> (i32, i32) {
    let (a, b) = (c(from), c(to));
    // SAFETY: valid C strings; AT_FDCWD with absolute paths.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    (r as i32, errno())
}

#[test]
fn rename_flags_and_errors() {
    let mut fs = TestFs::new();
    fs.start();
    let (a, b) = (fs.m("a"), fs.m("b"));
    sh_ok(&format!("echo A > {a} && echo B > {b}"));
    assert_eq!(
        renameat2(&a, &b, libc::RENAME_NOREPLACE),
        (-1, libc::EEXIST)
    );
    assert_eq!(renameat2(&a, &b, libc::RENAME_EXCHANGE).0, 0);
    assert_eq!(sh_ok(&format!("cat {a}")), "B\n");
    assert_eq!(sh_ok(&format!("cat {b}")), "A\n");
    let d = fs.m("d");
    sh_ok(&format!("mkdir -p {d}/sub && mkdir {}", fs.m("full")));
    sh_ok(&format!("touch {}/x", fs.m("full")));
    assert_eq!(
        renameat2(&d, &format!("{d}/sub/inner"), 0),
        (-1, libc::EINVAL)
    );
    assert_eq!(renameat2(&d, &fs.m("full"), 0), (-1, libc::ENOTEMPTY));
    sh_ok(&format!("mkdir {}", fs.m("emptydir")));
    assert_eq!(renameat2(&d, &fs.m("emptydir"), 0).0, 0);
    assert!(sh_ok(&format!("ls {}", fs.m("emptydir"))).contains("sub"));
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn special_files_names_and_locks() {
    let mut fs = TestFs::new();
    fs.start();
    sh_ok(&format!("mkfifo {}", fs.m("fifo")));
    assert_eq!(
        sh_ok(&format!("stat -c %F {}", fs.m("fifo"))).trim(),
        "fifo"
    );
    sh_ok(&format!("mknod {} c 1 3", fs.m("null")));
    assert_eq!(
        sh_ok(&format!("stat -c '%F %t:%T' {}", fs.m("null"))).trim(),
        "character special file 1:3"
    );
    assert_eq!(
        sh_ok(&format!("echo gone > {n} && cat {n}", n = fs.m("null"))),
        ""
    );
    // 255-byte names work, 256 bytes is ENAMETOOLONG.
    let ok = fs.m(&"n".repeat(255));
    sh_ok(&format!("touch {ok}"));
    let bad = c(&fs.m(&"n".repeat(256)));
    // SAFETY: valid C string.
    assert_eq!(
        unsafe { libc::open(bad.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o644) },
        -1
    );
    assert_eq!(errno(), libc::ENAMETOOLONG);
    // flock and fcntl locks: a second non-blocking lock fails while the first is held.
    let f = fs.m("lockfile");
    sh_ok(&format!("touch {f}"));
    let out = sh(&format!(
        "flock -x {f} -c 'flock -n -x {f} -c true; echo inner=$?'"
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("inner=1"),
        "flock: {out:?}"
    );
    // A blocking lock waits until the holder releases it.
    let out = sh(&format!(
        "(flock -x {f} -c 'sleep 1') & sleep 0.2; start=$(date +%s%N); flock -x {f} -c true; \
         end=$(date +%s%N); echo waited=$(( (end - start) / 1000000 ))"
    ));
    let waited: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .trim_start_matches("waited=")
        .parse()
        .expect("waited ms");
    assert!(waited >= 400, "blocking flock did not wait ({waited} ms)");
    fs.stop();
    fs.assert_no_panic();
}

/// relatime: the first read after a change updates atime; reading again soon does not.
#[test]
fn atime_follows_relatime() {
    let mut fs = TestFs::new();
    fs.start();
    let f = fs.m("f");
    sh_ok(&format!("echo data > {f} && touch -a -d '2001-01-01' {f}"));
    let atime = |fs: &TestFs| -> i64 {
        sh_ok(&format!("stat -c %X {}", fs.m("f")))
            .trim()
            .parse()
            .expect("atime")
    };
    assert_eq!(atime(&fs), 978_307_200);
    sh_ok(&format!("cat {f} > /dev/null"));
    let first = atime(&fs);
    assert!(first > 978_307_200, "read did not update a stale atime");
    sh_ok(&format!("touch -a -d '@{}' {f}", first + 100));
    sh_ok(&format!("cat {f} > /dev/null"));
    assert_eq!(
        atime(&fs),
        first + 100,
        "a fresh atime must not change on read"
    );
    fs.stop();
    fs.start();
    assert_eq!(atime(&fs), first + 100);
    fs.stop();
    fs.assert_no_panic();
}

/// statfs, ioctl, poll and fcntl record locks between two processes.
#[test]
fn statfs_ioctl_poll_and_record_locks() {
    use std::os::fd::AsRawFd;
    let mut fs = TestFs::new();
    fs.start();
    let df = sh_ok(&format!("df -P {} | tail -1", fs.m("")));
    assert!(df.starts_with("verfsnext"), "df: {df}");
    assert!(sh_ok(&format!("stat -f -c %l {}", fs.m(""))).trim() == "255");
    let f = fs.m("f");
    sh_ok(&format!("echo data > {f}"));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&f)
        .expect("open");
    let fd = file.as_raw_fd();
    // An ioctl the filesystem does not define is ENOTTY.
    // SAFETY: ioctl with an unknown request and no argument touches no memory of ours.
    let r = unsafe { libc::ioctl(fd, 0x8123_4567u32 as _) };
    assert_eq!((r, errno()), (-1, libc::ENOTTY));
    // A regular file polls readable and writable at once.
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN | libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 1000) }, 1);
    assert_eq!(
        p.revents & (libc::POLLIN | libc::POLLOUT),
        libc::POLLIN | libc::POLLOUT
    );
    // fcntl write lock held here: another process gets EAGAIN/EACCES without waiting.
    // SAFETY: flock is plain old data; all-zero is a valid value.
    let mut lk: libc::flock = unsafe { std::mem::zeroed() };
    lk.l_type = libc::F_WRLCK as i16;
    lk.l_whence = libc::SEEK_SET as i16;
    // SAFETY: fd is open for writing and lk a valid flock.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETLK, &lk) }, 0);
    let out = sh(&format!(
        "python3 -c 'import fcntl,sys; f=open(\"{f}\",\"r+\"); \
         fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)' 2>&1; echo rc=$?"
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rc=1")
            && (text.contains("Resource temporarily") || text.contains("Permission denied")),
        "{text}"
    );
    drop(file);
    let out = sh(&format!(
        "python3 -c 'import fcntl; f=open(\"{f}\",\"r+\"); fcntl.lockf(f, fcntl.LOCK_EX|fcntl.LOCK_NB)'; echo rc=$?"
    ));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("rc=0"),
        "lock not released: {out:?}"
    );
    fs.stop();
    fs.assert_no_panic();
}

/// set-user/group-ID bits: cleared by a non-root write and by chown; a set-group-ID
/// directory passes its group on, and its set-group-ID bit to subdirectories.
#[test]
fn setid_bits_and_sgid_directories() {
    let mut fs = TestFs::new();
    // The unprivileged user must reach the mount through the temp dir.
    sh_ok(&format!("chmod 755 {}", fs.dir().display()));
    fs.start();
    let m = fs.m("");
    sh_ok(&format!(
        "chmod 777 {m} && touch {m}/f && chown nobody {m}/f && chmod 6775 {m}/f"
    ));
    sh_ok(&format!(
        "setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c 'echo x >> {m}/f'"
    ));
    assert_eq!(
        sh_ok(&format!("stat -c %a {m}/f")).trim(),
        "775",
        "write kept set-ID bits"
    );
    sh_ok(&format!(
        "touch {m}/g && chmod 4755 {m}/g && chown nobody {m}/g"
    ));
    assert_eq!(
        sh_ok(&format!("stat -c %a {m}/g")).trim(),
        "755",
        "chown kept set-user-ID"
    );
    sh_ok(&format!(
        "mkdir {m}/sg && chown root:nogroup {m}/sg && chmod 2775 {m}/sg"
    ));
    sh_ok(&format!("touch {m}/sg/new && mkdir {m}/sg/sub"));
    assert_eq!(sh_ok(&format!("stat -c %G {m}/sg/new")).trim(), "nogroup");
    assert_eq!(
        sh_ok(&format!("stat -c '%a %G' {m}/sg/sub")).trim(),
        "2755 nogroup"
    );
    fs.stop();
    fs.assert_no_panic();
}

/// Writes are answered before they commit; times set right after them (tar, rsync -t,
/// cp -p) must not be overwritten when the data commits, and reads must already see
/// the data.
#[test]
fn times_set_right_after_writes_stick_and_data_reads_back() {
    let mut fs = TestFs::new();
    fs.start();
    let src = fs.t("src.bin");
    write_random(&src, 48 << 20, 31);
    let f = fs.m("f.bin");
    sh_ok(&format!(
        "dd if={src} of={f} bs=1M status=none && touch -m -d @1000000000 {f} && \
         touch -a -d @1100000000 {f}"
    ));
    let times = |fs: &TestFs| sh_ok(&format!("stat -c '%X %Y %s' {}", fs.m("f.bin")));
    assert_eq!(
        times(&fs).trim(),
        format!("1100000000 1000000000 {}", 48 << 20)
    );
    sh_ok(&format!("sync {f}"));
    assert_eq!(
        times(&fs).trim(),
        format!("1100000000 1000000000 {}", 48 << 20)
    );
    fs.stop();
    fs.start();
    assert_eq!(
        times(&fs).trim(),
        format!("1100000000 1000000000 {}", 48 << 20)
    );
    // Reading updates atime (relatime: it is older than ctime), never mtime.
    assert_eq!(sha256(&fs.m("f.bin")), sha256(&src));
    let after_read = times(&fs);
    assert!(after_read
        .trim()
        .ends_with(&format!(" 1000000000 {}", 48 << 20)));
    fs.stop();
    fs.assert_no_panic();
}

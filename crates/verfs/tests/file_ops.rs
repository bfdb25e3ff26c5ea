//! Space-level file operations through the mount: SEEK_DATA/SEEK_HOLE over holes,
//! fallocate modes, fsync of a directory, access(2).

mod common;

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

use common::*;

fn lseek(fd: i32, off: i64, whence: i32) -> (i64, i32) {
    // SAFETY: lseek on a valid fd has no memory-safety preconditions.
    let r = unsafe { libc::lseek(fd, off, whence) };
    (
        r,
        std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    )
}

#[test]
fn seek_data_and_hole_find_written_ranges() {
    let mut fs = TestFs::new();
    fs.start();
    let f = fs.m("sparse");
    // 1 MiB of data at 0, a 8 MiB hole, 1 MiB of data, then a hole to 16 MiB.
    write_random(&fs.t("a"), 1 << 20, 3);
    sh_ok(&format!(
        "dd if={a} of={f} bs=1M conv=notrunc,fsync status=none",
        a = fs.t("a")
    ));
    sh_ok(&format!(
        "dd if={a} of={f} bs=1M seek=9 conv=notrunc,fsync status=none",
        a = fs.t("a")
    ));
    sh_ok(&format!("truncate -s 16M {f}"));
    let file = OpenOptions::new().read(true).open(&f).expect("open sparse");
    let fd = file.as_raw_fd();
    let mib = 1i64 << 20;
    assert_eq!(lseek(fd, 0, libc::SEEK_DATA).0, 0);
    let hole = lseek(fd, 0, libc::SEEK_HOLE).0;
    assert!(
        (mib..=mib + (256 << 10)).contains(&hole),
        "first hole at {hole}"
    );
    let data = lseek(fd, 2 * mib, libc::SEEK_DATA).0;
    assert!((8 * mib..=9 * mib).contains(&data), "second data at {data}");
    let hole = lseek(fd, 9 * mib, libc::SEEK_HOLE).0;
    assert!(
        (10 * mib..=10 * mib + (256 << 10)).contains(&hole),
        "second hole at {hole}"
    );
    assert_eq!(lseek(fd, 11 * mib, libc::SEEK_DATA), (-1, libc::ENXIO));
    assert_eq!(lseek(fd, 16 * mib, libc::SEEK_HOLE), (-1, libc::ENXIO));
    drop(file);
    // st_blocks counts stored chunks only: 2 MiB of data (plus at most a chunk around each
    // edge), not 16 MiB; it survives a remount.
    let stored = |fs: &TestFs| {
        sh_ok(&format!("stat -c %b {}", fs.m("sparse")))
            .trim()
            .parse::<u64>()
            .expect("blocks")
            * 512
    };
    let blocks = stored(&fs);
    assert!(
        (2 << 20..=(2 << 20) + (1 << 20)).contains(&blocks),
        "st_blocks says {blocks} bytes"
    );
    // cp --sparse=always keeps the holes and the bytes.
    sh_ok(&format!("cp --sparse=always {f} {}", fs.t("copy")));
    assert_eq!(sha256(&fs.t("copy")), sha256(&f));
    fs.stop();
    fs.start();
    assert_eq!(stored(&fs), blocks, "st_blocks changed across remount");
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn fallocate_modes_and_directory_fsync() {
    let mut fs = TestFs::new();
    fs.start();
    let f = fs.m("f");
    sh_ok(&format!("echo hello > {f}"));
    sh_ok(&format!("fallocate -l 1M {f}"));
    assert_eq!(size_of(&f), 1 << 20);
    assert_eq!(sh_ok(&format!("head -c 5 {f}")), "hello");
    sh_ok(&format!("fallocate -n -l 4M {f}"));
    assert_eq!(size_of(&f), 1 << 20, "KEEP_SIZE must not change the size");
    // Punching a hole zeroes the range, keeps the size and frees the chunks inside.
    let g = fs.m("g");
    write_random(&fs.t("g.src"), 2 << 20, 33);
    sh_ok(&format!("cp {} {g}", fs.t("g.src")));
    sh_ok("sync");
    let blocks = |p: &str| -> u64 {
        sh_ok(&format!("stat -c %b {p}"))
            .trim()
            .parse()
            .expect("blocks")
    };
    let before = blocks(&g);
    sh_ok(&format!("fallocate -p -o 100000 -l 1000000 {g}"));
    sh_ok(&format!(
        "dd if=/dev/zero of={src} bs=1 seek=100000 count=1000000 conv=notrunc status=none",
        src = fs.t("g.src")
    ));
    assert_eq!(size_of(&g), 2 << 20);
    assert_eq!(
        sha256(&g),
        sha256(&fs.t("g.src")),
        "punched file differs from zeroed copy"
    );
    assert!(
        blocks(&g) < before,
        "punching did not free chunks ({} -> {})",
        before,
        blocks(&g)
    );
    // ZERO_RANGE past the end grows the file.
    sh_ok(&format!("fallocate -z -o {} -l 4096 {g}", 2 << 20));
    assert_eq!(size_of(&g), (2 << 20) + 4096);
    // fsync on a directory (what sqlite and rename-durability code do).
    let dir = OpenOptions::new()
        .read(true)
        .open(fs.m(""))
        .expect("open dir");
    dir.sync_all().expect("fsync of a directory");
    drop(dir);
    fs.stop();
    fs.start();
    assert_eq!(size_of(&f), 1 << 20);
    sh_ok(&format!("truncate -s {} {}", 2 << 20, fs.t("g.src")));
    sh_ok(&format!(
        "truncate -s {} {}",
        (2 << 20) + 4096,
        fs.t("g.src")
    ));
    assert_eq!(
        sha256(&g),
        sha256(&fs.t("g.src")),
        "punched file changed across remount"
    );
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn access_reports_existence_and_permissions() {
    let mut fs = TestFs::new();
    fs.start();
    let f = fs.m("f");
    sh_ok(&format!("echo x > {f} && chmod 644 {f}"));
    let path = CString::new(f.clone()).expect("path");
    // SAFETY: path is a valid C string.
    assert_eq!(unsafe { libc::access(path.as_ptr(), libc::F_OK) }, 0);
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::access(path.as_ptr(), libc::R_OK | libc::W_OK) },
        0
    );
    // SAFETY: as above; root has no execute right on a file without any x bit.
    assert_eq!(unsafe { libc::access(path.as_ptr(), libc::X_OK) }, -1);
    let missing = CString::new(fs.m("nope")).expect("path");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::access(missing.as_ptr(), libc::F_OK) }, -1);
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn copy_file_range_copies_bytes_and_shares_chunks() {
    let mut fs = TestFs::new();
    fs.start();
    let size = 24 << 20;
    write_random(&fs.t("src"), size, 21);
    // Synced: writes are answered before they commit, and pack_bytes counts commits.
    sh_ok(&format!(
        "cp {} {} && sync {}",
        fs.t("src"),
        fs.m("a"),
        fs.m("a")
    ));
    let packs_before: u64 = fs.stats()["pack_bytes"].as_u64().expect("pack_bytes");
    let out = std::fs::File::create(fs.m("b")).expect("create b");
    let input = std::fs::File::open(fs.m("a")).expect("open a");
    let mut left = size;
    while left > 0 {
        // SAFETY: both fds are open; null offsets use and advance the file positions.
        let n = unsafe {
            libc::copy_file_range(
                input.as_raw_fd(),
                std::ptr::null_mut(),
                out.as_raw_fd(),
                std::ptr::null_mut(),
                left,
                0,
            )
        };
        assert!(
            n > 0,
            "copy_file_range returned {n}: {}",
            std::io::Error::last_os_error()
        );
        left -= n as usize;
    }
    drop((out, input));
    assert_eq!(sha256(&fs.m("b")), sha256(&fs.t("src")));
    let growth = fs.stats()["pack_bytes"].as_u64().expect("pack_bytes") - packs_before;
    eprintln!("copy_file_range of {size} bytes grew packs by {growth} bytes");
    assert!(
        growth * 100 < size as u64,
        "copy grew packs by {growth} bytes"
    );
    fs.stop();
    fs.start();
    assert_eq!(sha256(&fs.m("b")), sha256(&fs.t("src")));
    fs.stop();
    fs.assert_no_panic();
}

/// copy_file_range at unaligned offsets into existing files gives exactly what the
/// native filesystem gives, shares chunks (the copies survive deleting the source) and
/// survives a remount.
#[test]
fn copy_file_range_matches_native_at_odd_offsets() {
    let mut fs = TestFs::new();
    fs.start();
    write_random(&fs.t("src"), 9 << 20, 41);
    write_random(&fs.t("dst"), 3 << 20, 42);
    sh_ok(&format!(
        "cp {} {} && cp {} {}",
        fs.t("src"),
        fs.m("src"),
        fs.t("dst"),
        fs.m("dst")
    ));
    // (src offset, dst offset, len): inside, crossing the end, past the end, tiny, whole.
    let ops = [
        (12_345u64, 777u64, 5_000_000u64),
        (1 << 20, (3 << 20) - 1000, 3 << 20),
        (0, 10 << 20, 100),
        (4_000_000, 5, 7),
        (0, 0, 9 << 20),
    ];
    for (root, name) in [(fs.t(""), "native"), (fs.m(""), "mounted")] {
        let script = ops
            .iter()
            .enumerate()
            .map(|(i, (a, b, n))| {
                format!(
                    "s=os.open('{root}/src',os.O_RDONLY); d=os.open('{root}/dst{i}' if False else '{root}/dst',os.O_RDWR); \
                     left={n}; a={a}; b={b}\nwhile left>0:\n    k=os.copy_file_range(s,d,left,a,b)\n    \
                     if k==0: break\n    a+=k; b+=k; left-=k\nos.close(s); os.close(d)\n"
                )
            })
            .collect::<String>();
        let py = format!("import os\n{script}");
        std::fs::write(fs.t(&format!("{name}.py")), py).expect("write script");
        sh_ok(&format!("python3 {}", fs.t(&format!("{name}.py"))));
    }
    assert_eq!(
        sha256(&fs.m("dst")),
        sha256(&fs.t("dst")),
        "copy_file_range result differs"
    );
    assert_eq!(size_of(&fs.m("dst")), size_of(&fs.t("dst")));
    // The destination keeps its data when the source is gone (references were counted).
    sh_ok(&format!("rm {}", fs.m("src")));
    assert_eq!(sha256(&fs.m("dst")), sha256(&fs.t("dst")));
    fs.stop();
    fs.start();
    assert_eq!(
        sha256(&fs.m("dst")),
        sha256(&fs.t("dst")),
        "differs after remount"
    );
    fs.stop();
    fs.assert_no_panic();
}

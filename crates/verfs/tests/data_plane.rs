//! The data plane through the mount: dedup of identical and shifted copies, compression
//! of text, stats, and bounded daemon memory while writing a large file.

mod common;

use common::*;

fn stat_u64(v: &serde_json::Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_u64()
        .unwrap_or_else(|| panic!("stats field {path:?} missing in {v}"))
}

/// Copies and fsyncs the copy: writes are answered before they commit, so space figures
/// are only final once a sync barrier has passed.
fn copy_synced(src: &str, dst: &str) {
    sh_ok(&format!("cp {src} {dst} && sync {dst}"));
}

fn pack_bytes(fs: &TestFs) -> u64 {
    stat_u64(&fs.stats(), &["pack_bytes"])
}

/// The seed's Phase 3 gate: identical copy, one-byte-shifted copy, compressible text.
#[test]
fn dedup_and_compression_gate() {
    let mut fs = TestFs::new();
    fs.start();
    let size = 48 << 20;
    let src = fs.t("big.bin");
    write_random(&src, size, 7);
    let shifted = fs.t("shifted.bin");
    sh_ok(&format!("(printf 'X'; cat {src}) > {shifted}"));

    copy_synced(&src, &fs.m("a.bin"));
    let after_first = pack_bytes(&fs);
    let hits_before = stat_u64(&fs.stats(), &["activity", "dedup_hits"]);
    let cached_before = stat_u64(&fs.stats(), &["activity", "dedup_cache_hits"]);
    copy_synced(&src, &fs.m("b.bin"));
    let after_second = pack_bytes(&fs);
    let hits_after = stat_u64(&fs.stats(), &["activity", "dedup_hits"]);
    let cached_after = stat_u64(&fs.stats(), &["activity", "dedup_cache_hits"]);
    assert!(
        cached_after - cached_before > (size as u64 >> 17),
        "the second copy's chunks were not found in the known-chunk cache \
         ({cached_before} -> {cached_after} hits)"
    );
    let growth = after_second - after_first;
    eprintln!("identical copy of {size} bytes grew packs by {growth} bytes");
    assert!(
        growth * 100 < size as u64,
        "second identical copy grew packs by {growth} bytes"
    );
    assert!(
        hits_after > hits_before,
        "no dedup hits counted for the second copy"
    );

    copy_synced(&shifted, &fs.m("c.bin"));
    let growth = pack_bytes(&fs) - after_second;
    eprintln!("one-byte-shifted copy of {size} bytes grew packs by {growth} bytes");
    assert!(
        growth * 20 < size as u64,
        "one-byte-shifted copy grew packs by {growth} bytes"
    );

    // Compressible text: C headers and documentation.
    let text = fs.t("text.txt");
    sh_ok(&format!(
        "find /usr/include /usr/share/doc -type f \\( -name '*.h' -o -name '*.txt' -o -name 'copyright' \\) \
         -size -2M 2>/dev/null | head -n 4000 | xargs cat > {text} 2>/dev/null; true"
    ));
    let text_size = size_of(&text);
    assert!(
        text_size > 4 << 20,
        "need more sample text, got {text_size} bytes"
    );
    let before_text = pack_bytes(&fs);
    copy_synced(&text, &fs.m("text.txt"));
    let stored = pack_bytes(&fs) - before_text;
    eprintln!("{text_size} bytes of text stored in {stored} bytes");
    assert!(
        stored * 100 < text_size * 35,
        "text stored {stored} of {text_size} bytes"
    );
    // Text shifted by one byte: content-defined cuts must resynchronise on text too.
    let shifted_text = fs.t("shifted.txt");
    sh_ok(&format!("(printf 'Y'; cat {text}) > {shifted_text}"));
    let before_shifted = pack_bytes(&fs);
    copy_synced(&shifted_text, &fs.m("shifted.txt"));
    let growth = pack_bytes(&fs) - before_shifted;
    eprintln!("one-byte-shifted text of {text_size} bytes grew packs by {growth} bytes");
    assert!(
        growth * 100 < text_size,
        "one-byte-shifted text grew packs by {growth} bytes"
    );

    let check = |fs: &TestFs| {
        for (copy, orig) in [
            ("a.bin", &src),
            ("b.bin", &src),
            ("c.bin", &shifted),
            ("text.txt", &text),
            ("shifted.txt", &shifted_text),
        ] {
            assert_eq!(sha256(&fs.m(copy)), sha256(orig), "{copy} differs");
        }
    };
    check(&fs);
    fs.stop();
    fs.start();
    check(&fs);
    fs.stop();
    fs.assert_no_panic();
}

fn vm_hwm_kib(pid: libc::pid_t) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc status")
}

/// Writing a 2 GiB file never buffers it: the daemon's peak RSS stays far below it.
#[test]
fn writing_2_gib_keeps_daemon_memory_bounded() {
    let mut fs = TestFs::new();
    fs.start();
    let pid = fs.pid();
    sh_ok(&format!(
        "head -c {} /dev/urandom | dd of={} bs=1M iflag=fullblock conv=fsync status=none",
        2u64 << 30,
        fs.m("huge.bin")
    ));
    assert_eq!(size_of(&fs.m("huge.bin")), 2 << 30);
    let peak_mib = vm_hwm_kib(pid) / 1024;
    eprintln!("daemon VmHWM after writing 2 GiB: {peak_mib} MiB");
    assert!(
        peak_mib < 768,
        "daemon peak RSS {peak_mib} MiB while writing 2 GiB"
    );
    fs.stop();
    fs.assert_no_panic();
}

/// Random 4 KiB overwrites in a large file re-chunk only their neighbourhood: each one
/// stores at most a few new chunks, and the file reads back exactly.
#[test]
fn small_overwrites_rewrite_only_a_few_chunks() {
    let mut fs = TestFs::new();
    fs.start();
    let src = fs.t("base.bin");
    write_random(&src, 32 << 20, 11);
    let f = fs.m("f.bin");
    copy_synced(&src, &f);
    let misses = |fs: &TestFs| stat_u64(&fs.stats(), &["activity", "dedup_misses"]);
    let before = misses(&fs);
    let patch = fs.t("patch.bin");
    write_random(&patch, 4096, 12);
    let offsets = [5u64, 977, 2048, 4000, 6100, 7001];
    for (i, block) in offsets.iter().enumerate() {
        sh_ok(&format!(
            "dd if={patch} of={f} bs=4096 seek={block} conv=notrunc,fsync status=none && \
             dd if={patch} of={src} bs=4096 seek={block} conv=notrunc status=none"
        ));
        let stored = misses(&fs) - before;
        assert!(
            stored <= 3 * (i as u64 + 1),
            "{} overwrites stored {stored} new chunks",
            i + 1
        );
    }
    eprintln!(
        "{} random 4 KiB overwrites stored {} new chunks",
        offsets.len(),
        misses(&fs) - before
    );
    assert_eq!(sha256(&f), sha256(&src));
    fs.stop();
    fs.start();
    assert_eq!(sha256(&fs.m("f.bin")), sha256(&src));
    fs.stop();
    fs.assert_no_panic();
}

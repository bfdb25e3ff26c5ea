//! Vault chunks on disk: tampered pack records answer EIO (a flipped payload byte,
//! payloads and nonces swapped between records, each with a recomputed CRC so only the
//! AEAD can tell), `copy_file_range` across the vault's boundary stores bytes in the
//! destination's domain, and GC rewrites packs of vault records without the key.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;

use common::vault::*;
use common::*;

#[test]
fn vault_tamper_flipped_byte_is_eio() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    // The password from stdin's first line (no -p, stdin not a terminal).
    let dir = path_str(fs.dir());
    crypt_expect(
        &fs,
        &["-c", "--key-dir", &dir],
        Some(&format!("{pass}\n")),
        0,
    );
    let key = fs.t(KEY_NAME);
    let (plain_src, vault_src) = (fs.t("plain.bin"), fs.t("vault.bin"));
    write_random(&plain_src, 150 << 10, 61);
    write_random(&vault_src, 200 << 10, 62);
    sh_ok(&format!(
        "cp {plain_src} {} && cp {vault_src} {} && sync",
        fs.m("plain.bin"),
        fs.m(".vault/vault.bin")
    ));
    fs.stop();

    let records = pack_records(&fs);
    let encrypted: Vec<&Record> = records.iter().filter(|r| r.encrypted()).collect();
    assert!(
        !encrypted.is_empty(),
        "no encrypted record in the packs: the vault file is stored in the clear"
    );
    assert!(
        records.iter().any(|r| !r.encrypted()),
        "the plain file's records are missing or encrypted"
    );
    // One byte in the middle of every sealed payload, CRC made right again: only the
    // AEAD tag can notice.
    for rec in &encrypted {
        let at = rec.offset + (rec.payload_start() + rec.stored_len as usize / 2) as u64;
        flip_bytes(&rec.pack, at, 1);
        fix_crc(rec);
    }

    fs.start();
    assert_eq!(vault_status(&fs), "locked");
    unlock(&fs, &key, &pass, 0);
    assert_read_eio(&fs.m(".vault/vault.bin"), None);
    assert!(
        !sh(&format!("cat {} > /dev/null", fs.m(".vault/vault.bin")))
            .status
            .success(),
        "cat of the tampered vault file succeeded"
    );
    assert_eq!(sha256(&fs.m("plain.bin")), sha256(&plain_src));
    assert_eq!(size_of(&fs.m(".vault/vault.bin")), 200 << 10);
    fs.assert_alive();
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn vault_tamper_swapped_payloads_is_eio() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    // Two files below the minimum chunk size: one chunk each, random (stored raw under
    // the seal), so both records have the same plain and stored lengths.
    const LEN: usize = 8000;
    let (a_src, b_src) = (fs.t("a.bin"), fs.t("b.bin"));
    write_random(&a_src, LEN, 71);
    write_random(&b_src, LEN, 72);
    let (a, b) = (fs.m(".vault/a.bin"), fs.m(".vault/b.bin"));
    sh_ok(&format!("cp {a_src} {a} && cp {b_src} {b} && sync"));
    fs.stop();

    let records = pack_records(&fs);
    let pair: Vec<Record> = records
        .iter()
        .filter(|r| r.encrypted() && r.plain_len as usize == LEN)
        .cloned()
        .collect();
    assert_eq!(
        pair.len(),
        2,
        "want one encrypted record per file; encrypted records (plain, stored): {:?}",
        records
            .iter()
            .filter(|r| r.encrypted())
            .map(|r| (r.plain_len, r.stored_len))
            .collect::<Vec<_>>()
    );
    let (r0, r1) = (&pair[0], &pair[1]);
    assert_eq!(r0.stored_len, r1.stored_len, "equal stored lengths");
    let (a_bytes, b_bytes) = (fs::read(&a_src).expect("a"), fs::read(&b_src).expect("b"));

    // Swaps bytes `from..` between the two records; headers stay, CRCs are recomputed.
    let swap_from = |from: usize| {
        let mut x = r0.bytes.clone();
        let mut y = r1.bytes.clone();
        x[from..].copy_from_slice(&r1.bytes[from..]);
        y[from..].copy_from_slice(&r0.bytes[from..]);
        write_record(r0, &x);
        write_record(r1, &y);
    };
    let restore = || {
        write_record(r0, &r0.bytes);
        write_record(r1, &r1.bytes);
    };
    let check_eio = |fs: &mut TestFs, what: &str| {
        fs.start();
        unlock(fs, &key, &pass, 0);
        eprintln!("checking: {what}");
        assert_read_eio(&a, Some(&b_bytes));
        assert_read_eio(&b, Some(&a_bytes));
        fs.assert_alive();
        fs.stop();
    };

    // Payloads swapped, each record keeping its own nonce.
    swap_from(r0.payload_start());
    check_eio(&mut fs, "payloads swapped");
    // Nonces and payloads swapped together.
    restore();
    swap_from(r0.nonce_start());
    check_eio(&mut fs, "nonces and payloads swapped");
    // Put back, both read again: the EIOs came from the swaps.
    restore();
    for rec in [r0, r1] {
        let mut now = vec![0u8; rec.bytes.len()];
        File::open(&rec.pack)
            .and_then(|f| f.read_exact_at(&mut now, rec.offset))
            .expect("read restored record");
        assert!(now == rec.bytes, "record at {} not restored", rec.offset);
    }
    fs.start();
    unlock(&fs, &key, &pass, 0);
    assert_eq!(fs::read(&a).expect("read a after restore"), a_bytes);
    assert_eq!(fs::read(&b).expect("read b after restore"), b_bytes);
    fs.stop();
    fs.assert_no_panic();
}

#[test]
fn vault_copy_file_range_across_boundary_copies_bytes() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    let (plain, sealed) = (1usize << 20, 512usize << 10);
    write_random(&fs.m("src"), plain, 11);
    write_random(&fs.m(".vault/v2"), sealed, 12);
    // Plain into the vault and vault out to plain: the bytes must be re-stored in the
    // destination's domain, never shared as chunks.
    assert_eq!(copy_range(&fs.m("src"), &fs.m(".vault/dst"), plain), plain);
    assert_eq!(
        copy_range(&fs.m(".vault/v2"), &fs.m("out2"), sealed),
        sealed
    );
    let (sum_src, sum_v2) = (sha256(&fs.m("src")), sha256(&fs.m(".vault/v2")));
    assert_eq!(sha256(&fs.m(".vault/dst")), sum_src);
    assert_eq!(sha256(&fs.m("out2")), sum_v2);
    sh_ok(&format!("sync -f {}", fs.m("src")));
    fs.stop();

    let records = pack_records(&fs);
    let total = |enc: bool| -> u64 {
        records
            .iter()
            .filter(|r| r.encrypted() == enc)
            .map(|r| u64::from(r.plain_len))
            .sum()
    };
    // Shared chunks would leave `dst` on src's plain records (encrypted bytes would be
    // only v2's) and `out2` on v2's encrypted ones (plain bytes only src's).
    assert!(
        total(true) >= (plain + sealed) as u64,
        "encrypted records hold {} plain bytes, want ≥ {}",
        total(true),
        plain + sealed
    );
    assert!(
        total(false) >= (plain + sealed) as u64,
        "plain records hold {} bytes, want ≥ {}",
        total(false),
        plain + sealed
    );

    fs.start();
    assert_eq!(vault_status(&fs), "locked");
    assert_eq!(
        sha256(&fs.m("out2")),
        sum_v2,
        "copied-out file reads while locked"
    );
    unlock(&fs, &key, &pass, 0);
    assert_eq!(sha256(&fs.m(".vault/dst")), sum_src);
    fs.stop();
    fs.assert_no_panic();
}

/// GC moves vault records as ciphertext and needs no key: with the vault locked, a
/// deleted vault file's packs are rewritten around the surviving vault file, which
/// then reads back intact once unlocked, and fsck (which cannot decrypt) finds nothing.
#[test]
fn vault_gc_rewrites_packs_while_locked() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    let key = create_vault(&fs, &pass);
    // Interleaved small writes put the two files' chunks into the same packs, so
    // freeing one makes GC rewrite (not just remove) packs holding the other.
    let (keep, gone) = (fs.m(".vault/keep"), fs.m(".vault/gone"));
    let (mut k, mut g) = (File::create(&keep).unwrap(), File::create(&gone).unwrap());
    for i in 0..48u64 {
        k.write_all(&urandom(64 << 10)).unwrap();
        g.write_all(&urandom(256 << 10)).unwrap();
        if i % 8 == 7 {
            k.sync_all().unwrap();
            g.sync_all().unwrap();
        }
    }
    drop((k, g));
    let sum = sha256(&keep);
    fs::remove_file(&gone).unwrap();
    sh_ok(&format!("sync -f {}", fs.m("")));
    lock(&fs);
    let before = fs.pack_bytes_on_disk();
    let report = fs.gc_run();
    let rewritten = report["packs_rewritten"].as_u64().unwrap_or(0);
    let reclaimed = report["bytes_reclaimed"].as_u64().unwrap_or(0);
    assert!(
        rewritten > 0 && reclaimed >= 8 << 20,
        "GC with the vault locked: {report}"
    );
    assert!(fs.pack_bytes_on_disk() < before);
    unlock(&fs, &key, &pass, 0);
    assert_eq!(sha256(&keep), sum, "surviving vault file after the rewrite");
    fs.assert_fsck_clean();
    fs.assert_no_panic();
}

/// Dedup works inside the vault (equal plaintexts, one keyed id, stored once) and never
/// across its boundary (the same bytes outside are stored again, as plain records).
#[test]
fn vault_dedups_inside_and_never_across_the_boundary() {
    let mut fs = TestFs::new();
    fs.start();
    let pass = format!("pw-{}", random_token(16));
    create_vault(&fs, &pass);
    let data = urandom(4 << 20);
    for name in [".vault/a", ".vault/b", "plain"] {
        let mut f = File::create(fs.m(name)).unwrap();
        f.write_all(&data).unwrap();
        // fsync commits the held tail too, so stats count every byte.
        f.sync_all().unwrap();
    }
    let s = fs.stats();
    let (logical, unique) = (
        s["logical_bytes"].as_u64().unwrap_or(0),
        s["unique_bytes"].as_u64().unwrap_or(0),
    );
    let n = data.len() as u64;
    assert_eq!(logical, 3 * n, "{s}");
    // Two copies in the vault share chunks; the plain copy shares none with them.
    assert_eq!(unique, 2 * n, "{s}");
    fs.stop();
    let records = pack_records(&fs);
    let sum = |enc: bool| -> u64 {
        records
            .iter()
            .filter(|r| r.encrypted() == enc)
            .map(|r| u64::from(r.plain_len))
            .sum()
    };
    // Each domain stored once (a re-chunked tail may leave a dead record or two, never a
    // second copy).
    for enc in [true, false] {
        let got = sum(enc);
        assert!(
            got >= n && got < 2 * n,
            "encrypted={enc}: {got} bytes stored for {n}"
        );
    }
    fs.assert_no_panic();
}

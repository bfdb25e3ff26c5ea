//! The key file codec and its reader and writer.

use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;

use super::super::{KeyFile, VaultError, KEY_FILE_LEN, KEY_FILE_NAME};
use super::{err, fix_crc, key_file_with, ok};

#[test]
fn round_trip_keeps_id_and_secret() {
    let kf = ok(KeyFile::generate());
    let bytes = kf.encode();
    assert_eq!(bytes.len(), KEY_FILE_LEN);
    assert_eq!(&bytes[..8], b"VFSVKEY1");
    assert_eq!(&bytes[8..10], &[1, 0]);
    let back = ok(KeyFile::decode(&bytes));
    assert_eq!(back.vault_id(), kf.vault_id());
    assert_eq!(back.secret().as_bytes(), kf.secret().as_bytes());
    assert_eq!(&back.encode()[..], &bytes[..]);
}

#[test]
fn generate_draws_fresh_ids_and_secrets() {
    let a = ok(KeyFile::generate());
    let b = ok(KeyFile::generate());
    assert_ne!(a.vault_id(), b.vault_id());
    assert_ne!(a.secret().as_bytes(), b.secret().as_bytes());
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = ok(KeyFile::generate()).encode();
    for n in 0..bytes.len() {
        match err(KeyFile::decode(&bytes[..n])) {
            VaultError::KeyFileMalformed(m) => assert!(
                m.contains("truncated") || m.contains("length"),
                "cut at {n}: {m}"
            ),
            e => panic!("cut at {n}: {e}"),
        }
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(matches!(
        err(KeyFile::decode(&longer)),
        VaultError::KeyFileMalformed(m) if m.contains("length")
    ));
}

#[test]
fn every_flipped_byte_is_rejected() {
    let bytes = ok(KeyFile::generate()).encode();
    for i in 0..bytes.len() {
        let mut bad = bytes.to_vec();
        bad[i] ^= 0x01;
        match err(KeyFile::decode(&bad)) {
            VaultError::KeyFileMalformed(m) if i < 8 => assert!(m.contains("magic"), "{m}"),
            VaultError::KeyFileVersion(v) if (8..10).contains(&i) => assert_ne!(v, 1),
            VaultError::KeyFileMalformed(m) => assert!(m.contains("CRC"), "byte {i}: {m}"),
            e => panic!("byte {i}: {e}"),
        }
    }
}

#[test]
fn bad_magic_is_named() {
    let kf = ok(KeyFile::generate());
    let bad = key_file_with(&kf, |b| b[..8].copy_from_slice(b"VFSPACK1"));
    assert!(matches!(
        err(KeyFile::decode(&bad)),
        VaultError::KeyFileMalformed(m) if m.contains("magic")
    ));
    assert!(matches!(
        err(KeyFile::decode(b"hello, world")),
        VaultError::KeyFileMalformed(m) if m.contains("magic")
    ));
}

#[test]
fn unknown_version_is_its_own_error() {
    let kf = ok(KeyFile::generate());
    let v2 = key_file_with(&kf, |b| b[8..10].copy_from_slice(&2u16.to_le_bytes()));
    assert!(matches!(
        err(KeyFile::decode(&v2)),
        VaultError::KeyFileVersion(2)
    ));
    // A newer version may have another length: the version is still what is named.
    assert!(matches!(
        err(KeyFile::decode(&v2[..20])),
        VaultError::KeyFileVersion(2)
    ));
}

#[test]
fn non_zero_reserved_bytes_are_rejected() {
    let kf = ok(KeyFile::generate());
    let bad = key_file_with(&kf, |b| b[10] = 1);
    assert!(matches!(
        err(KeyFile::decode(&bad)),
        VaultError::KeyFileMalformed(m) if m.contains("reserved")
    ));
}

#[test]
fn crc_fix_helper_really_reaches_past_the_crc() {
    // The tests above rely on fix_crc; an unedited image must decode after it.
    let kf = ok(KeyFile::generate());
    let mut bytes = kf.encode().to_vec();
    fix_crc(&mut bytes);
    assert!(KeyFile::decode(&bytes).is_ok());
}

#[test]
fn write_new_then_read_back_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    let kf = ok(KeyFile::generate());
    ok(kf.write_new(&path));
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), KEY_FILE_LEN as u64);
    let back = ok(KeyFile::read(&path));
    assert_eq!(back.vault_id(), kf.vault_id());
    assert_eq!(back.secret().as_bytes(), kf.secret().as_bytes());
}

#[test]
fn write_new_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(KEY_FILE_NAME);
    let first = ok(KeyFile::generate());
    ok(first.write_new(&path));
    let second = ok(KeyFile::generate());
    match err(second.write_new(&path)) {
        VaultError::Io { path: p, cause } => {
            assert_eq!(p, path);
            assert_eq!(cause.kind(), ErrorKind::AlreadyExists);
        }
        e => panic!("{e}"),
    }
    assert_eq!(ok(KeyFile::read(&path)).vault_id(), first.vault_id());
}

#[test]
fn read_caps_the_size_and_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big");
    let mut image = ok(KeyFile::generate()).encode().to_vec();
    image.resize(10 << 20, 0);
    std::fs::write(&big, &image).unwrap();
    assert!(matches!(
        err(KeyFile::read(&big)),
        VaultError::KeyFileMalformed(m) if m.contains("length 4096")
    ));
    let missing = dir.path().join("missing");
    match err(KeyFile::read(&missing)) {
        VaultError::Io { path, cause } => {
            assert_eq!(path, missing);
            assert_eq!(cause.kind(), ErrorKind::NotFound);
        }
        e => panic!("{e}"),
    }
}

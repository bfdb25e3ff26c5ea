//! The wrap record: codec, Argon2 parameter bounds, unlock and password change.

use std::time::Instant;

use super::super::{
    change_password, create, unlock, KdfParams, KeyFile, VaultError, WrapRecord, WRAP_RECORD_LEN,
};
use super::{err, fast, fix_crc, key_file_with, new_vault, ok};

#[test]
fn create_then_unlock_gives_the_same_keys() {
    let (kf, wrap, vault) = new_vault(b"correct horse");
    assert_eq!(wrap.len(), WRAP_RECORD_LEN);
    let again = ok(unlock(&wrap, b"correct horse", &kf));
    assert_eq!(again.vault_id(), kf.vault_id());
    assert_eq!(again.chunk_id(b"abc"), vault.chunk_id(b"abc"));
    let (nonce, sealed) = ok(vault.seal_chunk(vault.chunk_id(b"abc"), 0, 3, b"abc"));
    let opened = ok(again.open_chunk(vault.chunk_id(b"abc"), 0, 3, &nonce, &sealed));
    assert_eq!(opened, b"abc");
}

#[test]
fn record_round_trips_and_keeps_params_and_id() {
    let (kf, wrap, _) = new_vault(b"pw");
    let rec = WrapRecord::decode(&wrap).unwrap();
    assert_eq!(rec.params(), fast());
    assert_eq!(rec.vault_id(), kf.vault_id());
    assert_eq!(rec.encode(), wrap);
    assert_eq!(&wrap[..2], &[1, 0]);
}

#[test]
fn two_creations_share_nothing() {
    let kf = ok(KeyFile::generate());
    let (a, va) = ok(create(b"pw", &kf, fast()));
    let (b, vb) = ok(create(b"pw", &kf, fast()));
    assert_ne!(a[16..48], b[16..48], "salt reused");
    assert_ne!(a[64..88], b[64..88], "nonce reused");
    assert_ne!(va.chunk_id(b"x"), vb.chunk_id(b"x"), "folder key reused");
}

#[test]
fn wrong_password_is_wrong_key() {
    let (kf, wrap, _) = new_vault(b"right");
    assert!(matches!(
        err(unlock(&wrap, b"wrong", &kf)),
        VaultError::WrongKey
    ));
    assert!(matches!(err(unlock(&wrap, b"", &kf)), VaultError::WrongKey));
}

#[test]
fn key_file_with_another_secret_is_wrong_key() {
    let (kf, wrap, _) = new_vault(b"pw");
    let other = key_file_with(&kf, |b| b[40] ^= 0x80);
    let other = ok(KeyFile::decode(&other));
    assert_eq!(other.vault_id(), kf.vault_id());
    assert!(matches!(
        err(unlock(&wrap, b"pw", &other)),
        VaultError::WrongKey
    ));
}

#[test]
fn key_file_of_another_vault_id_is_wrong_key() {
    // Same secret, other id: only the id binding can catch it.
    let (kf, wrap, _) = new_vault(b"pw");
    let other = key_file_with(&kf, |b| b[12] ^= 0x01);
    let other = ok(KeyFile::decode(&other));
    assert_ne!(other.vault_id(), kf.vault_id());
    assert_eq!(other.secret().as_bytes(), kf.secret().as_bytes());
    assert!(matches!(
        err(unlock(&wrap, b"pw", &other)),
        VaultError::WrongKey
    ));
    // And a wholly unrelated key file.
    let stranger = ok(KeyFile::generate());
    assert!(matches!(
        err(unlock(&wrap, b"pw", &stranger)),
        VaultError::WrongKey
    ));
}

#[test]
fn record_edited_with_a_valid_crc_is_wrong_key() {
    // Parameters (a downgrade), salt and vault id are authenticated; nonce, wrapped
    // key and tag are the AEAD's own inputs. Editing any of them and fixing the CRC
    // must still fail to unlock. The parameter edit keeps them valid: t 1 -> 2.
    let (kf, wrap, _) = new_vault(b"pw");
    for (what, off) in [
        ("t_cost", 8),
        ("salt", 20),
        ("vault id", 50),
        ("nonce", 70),
        ("wrapped key", 100),
        ("tag", 130),
    ] {
        let mut bad = wrap.clone();
        bad[off] ^= if off == 8 { 0x03 } else { 0x01 };
        fix_crc(&mut bad);
        assert!(WrapRecord::decode(&bad).is_ok(), "{what}");
        match err(unlock(&bad, b"pw", &kf)) {
            VaultError::WrongKey => {}
            e => panic!("{what}: {e}"),
        }
    }
}

#[test]
fn lowered_memory_cost_in_the_record_is_wrong_key() {
    // A downgrade of m (the cost that matters most to an attacker): 128 KiB wrapped,
    // record rewritten to claim 64 KiB with a valid CRC. Bound twice: Argon2 hashes its
    // parameters into the KEK, and the AAD covers them.
    let kf = ok(KeyFile::generate());
    let strong = KdfParams {
        m_cost_kib: 128,
        ..fast()
    };
    let (wrap, _) = ok(create(b"pw", &kf, strong));
    let mut bad = wrap.clone();
    bad[4..8].copy_from_slice(&64u32.to_le_bytes());
    fix_crc(&mut bad);
    assert_eq!(WrapRecord::decode(&bad).unwrap().params().m_cost_kib, 64);
    assert!(matches!(
        err(unlock(&bad, b"pw", &kf)),
        VaultError::WrongKey
    ));
}

#[test]
fn every_truncation_and_flipped_byte_is_rejected() {
    let (kf, wrap, _) = new_vault(b"pw");
    for n in 0..wrap.len() {
        assert!(
            matches!(
                err(unlock(&wrap[..n], b"pw", &kf)),
                VaultError::WrapMalformed(_)
            ),
            "cut at {n}"
        );
    }
    for i in 0..wrap.len() {
        let mut bad = wrap.clone();
        bad[i] ^= 0x10;
        match WrapRecord::decode(&bad).unwrap_err() {
            VaultError::WrapVersion(v) if i < 2 => assert_ne!(v, 1),
            VaultError::WrapMalformed(m) => assert!(m.contains("CRC"), "byte {i}: {m}"),
            e => panic!("byte {i}: {e}"),
        }
    }
    let mut longer = wrap.clone();
    longer.push(0);
    assert!(matches!(
        WrapRecord::decode(&longer).unwrap_err(),
        VaultError::WrapMalformed(m) if m.contains("length")
    ));
}

#[test]
fn unknown_version_and_reserved_bytes_are_rejected() {
    let (_, wrap, _) = new_vault(b"pw");
    let mut v2 = wrap.clone();
    v2[..2].copy_from_slice(&2u16.to_le_bytes());
    fix_crc(&mut v2);
    assert!(matches!(
        WrapRecord::decode(&v2).unwrap_err(),
        VaultError::WrapVersion(2)
    ));
    let mut reserved = wrap.clone();
    reserved[3] = 1;
    fix_crc(&mut reserved);
    assert!(matches!(
        WrapRecord::decode(&reserved).unwrap_err(),
        VaultError::WrapMalformed(m) if m.contains("reserved")
    ));
}

#[test]
fn absurd_params_in_a_record_are_malformed_not_allocated() {
    let (kf, wrap, _) = new_vault(b"pw");
    for (off, value) in [
        (4, u32::MAX), // m: 4 TiB
        (4, 7),        // m below 8 KiB per lane
        (8, 0),        // t = 0
        (8, 1000),     // t absurd
        (12, 0),       // p = 0
        (12, 1 << 20), // p absurd
    ] {
        let mut bad = wrap.clone();
        bad[off..off + 4].copy_from_slice(&value.to_le_bytes());
        fix_crc(&mut bad);
        match err(unlock(&bad, b"pw", &kf)) {
            VaultError::WrapMalformed(m) => assert!(m.contains("cost"), "{m}"),
            e => panic!("offset {off} value {value}: {e}"),
        }
    }
}

#[test]
fn kdf_params_bounds() {
    let d = KdfParams::default();
    assert_eq!((d.m_cost_kib, d.t_cost, d.p_cost), (65536, 3, 4));
    assert!(d.validate().is_ok());
    assert!(fast().validate().is_ok());
    let bad = [
        KdfParams { p_cost: 0, ..d },
        KdfParams { t_cost: 0, ..d },
        KdfParams {
            m_cost_kib: 31,
            ..d
        },
        KdfParams {
            m_cost_kib: 4 * 1024 * 1024 + 1,
            ..d
        },
        KdfParams { t_cost: 65, ..d },
        KdfParams { p_cost: 65, ..d },
    ];
    for p in bad {
        assert!(
            matches!(p.validate(), Err(VaultError::BadParams(_))),
            "{p:?}"
        );
        let kf = ok(KeyFile::generate());
        assert!(matches!(
            err(create(b"pw", &kf, p)),
            VaultError::BadParams(_)
        ));
    }
    let max = KdfParams {
        m_cost_kib: 4 * 1024 * 1024,
        t_cost: 64,
        p_cost: 64,
    };
    assert!(max.validate().is_ok());
}

#[test]
fn change_password_keeps_the_folder_key() {
    let (kf, wrap, before) = new_vault(b"old");
    let id = before.chunk_id(b"payload");
    let (nonce, sealed) = ok(before.seal_chunk(id, 1, 7, b"payload"));
    let stronger = KdfParams {
        t_cost: 2,
        ..fast()
    };
    let new_wrap = ok(change_password(&wrap, b"old", b"new", &kf, stronger));
    assert_ne!(new_wrap, wrap);
    assert_eq!(WrapRecord::decode(&new_wrap).unwrap().params(), stronger);
    assert!(matches!(
        err(unlock(&new_wrap, b"old", &kf)),
        VaultError::WrongKey
    ));
    let after = ok(unlock(&new_wrap, b"new", &kf));
    assert_eq!(after.chunk_id(b"payload"), id);
    assert_eq!(ok(after.open_chunk(id, 1, 7, &nonce, &sealed)), b"payload");
    let (nonce2, sealed2) = ok(after.seal_chunk(id, 1, 7, b"payload"));
    assert_eq!(
        ok(before.open_chunk(id, 1, 7, &nonce2, &sealed2)),
        b"payload"
    );
}

#[test]
fn change_password_needs_the_old_password_and_valid_params() {
    let (kf, wrap, _) = new_vault(b"old");
    assert!(matches!(
        err(change_password(&wrap, b"guess", b"new", &kf, fast())),
        VaultError::WrongKey
    ));
    let bad = KdfParams {
        t_cost: 0,
        ..fast()
    };
    assert!(matches!(
        err(change_password(&wrap, b"old", b"new", &kf, bad)),
        VaultError::BadParams(_)
    ));
    let stranger = ok(KeyFile::generate());
    assert!(matches!(
        err(change_password(&wrap, b"old", b"new", &stranger, fast())),
        VaultError::WrongKey
    ));
}

/// Not a benchmark and asserts no time: prints what one unlock costs with the default
/// parameters on this machine (`--nocapture` to see it).
#[test]
fn default_params_unlock_time() {
    let kf = ok(KeyFile::generate());
    let params = KdfParams::default();
    let (wrap, _) = ok(create(b"pw", &kf, params));
    let start = Instant::now();
    let vault = ok(unlock(&wrap, b"pw", &kf));
    let unlock_time = start.elapsed();
    let start = Instant::now();
    assert!(matches!(
        err(unlock(&wrap, b"wrong", &kf)),
        VaultError::WrongKey
    ));
    let wrong_time = start.elapsed();
    assert_eq!(vault.vault_id(), kf.vault_id());
    println!(
        "argon2id m={} KiB t={} p={}: unlock {unlock_time:?}, wrong password {wrong_time:?}",
        params.m_cost_kib, params.t_cost, params.p_cost
    );
}

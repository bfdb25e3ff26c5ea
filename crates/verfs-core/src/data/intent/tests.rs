//! The intent log's format and file handling: round trips, torn ends, stale
//! generations, bad headers, and decoders against hostile bytes.

use rand::Rng;

use super::*;
use crate::fuzz_util::{damaged, noise, rng, Budget};

fn sample_ops() -> Vec<IntentOp> {
    vec![
        IntentOp::Write {
            ino: Ino(7),
            offset: 4096,
            data: b"hello intent".to_vec(),
        },
        IntentOp::SetSize {
            ino: Ino(7),
            size: 3,
        },
        IntentOp::Zero {
            ino: Ino(9),
            offset: 10,
            len: 20,
            extend: true,
        },
        IntentOp::Zero {
            ino: Ino(9),
            offset: 1,
            len: 2,
            extend: false,
        },
        IntentOp::Write {
            ino: Ino(9),
            offset: 0,
            data: Vec::new(),
        },
    ]
}

fn as_ref(op: &IntentOp) -> OpRef<'_> {
    match op {
        IntentOp::Write { ino, offset, data } => OpRef::Write {
            ino: *ino,
            offset: *offset,
            data,
        },
        IntentOp::SetSize { ino, size } => OpRef::SetSize {
            ino: *ino,
            size: *size,
        },
        IntentOp::Zero {
            ino,
            offset,
            len,
            extend,
        } => OpRef::Zero {
            ino: *ino,
            offset: *offset,
            len: *len,
            extend: *extend,
        },
    }
}

fn encode_all(generation: u64, ops: &[IntentOp]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        encode_record(&mut out, generation, as_ref(op));
    }
    out
}

fn log_bytes(generation: u64, ops: &[IntentOp]) -> Vec<u8> {
    let mut b = encode_header(generation).to_vec();
    b.extend_from_slice(&encode_all(generation, ops));
    b
}

#[test]
fn records_round_trip_in_order() {
    let ops = sample_ops();
    let (generation, back) = read_log(&log_bytes(5, &ops)).expect("read");
    assert_eq!(generation, 5);
    assert_eq!(back, ops);
}

#[test]
fn a_torn_or_corrupt_record_ends_the_log() {
    let ops = sample_ops();
    let full = log_bytes(2, &ops);
    // Every cut of the last record keeps exactly the records before it.
    let last_start = full.len() - encode_all(2, &ops[4..]).len();
    for cut in last_start..full.len() {
        let (_, back) = read_log(&full[..cut]).expect("read");
        assert_eq!(back, ops[..4], "cut at {cut}");
    }
    // A flipped byte in the first record's data hides it and everything after.
    let mut bad = full.clone();
    bad[HEADER_LEN as usize + RECORD_FIXED + 2] ^= 0x40;
    assert_eq!(read_log(&bad).expect("read").1, Vec::new());
}

#[test]
fn records_of_another_generation_are_not_read() {
    let ops = sample_ops();
    let mut b = encode_header(3).to_vec();
    b.extend_from_slice(&encode_all(3, &ops[..1]));
    b.extend_from_slice(&encode_all(2, &ops[1..]));
    assert_eq!(read_log(&b).expect("read").1, ops[..1]);
}

#[test]
fn headers_this_build_does_not_read_are_refused() {
    let good = encode_header(1);
    assert_eq!(decode_header(&good).expect("good"), 1);
    assert!(decode_header(&good[..20]).is_err());
    let mut other = good;
    other[8] = 2; // version 2
    let sum = xxh3_64(&other[..24]);
    other[24..32].copy_from_slice(&sum.to_le_bytes());
    let e = decode_header(&other).expect_err("version 2");
    assert!(e.to_string().contains("version 2"), "{e}");
    let mut flipped = good;
    flipped[17] ^= 1;
    assert!(decode_header(&flipped).is_err());
}

#[test]
fn open_append_flush_reset_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (log, ops) = IntentLog::open(dir.path(), 0o600).expect("open");
    assert!(ops.is_empty());
    let sample = sample_ops();
    let g = log.generation();
    log.append(&encode_all(g, &sample)).expect("append");
    log.flush().expect("flush");
    drop(log);
    // A crash here: the records are found again, and appends go after them.
    let (log, ops) = IntentLog::open(dir.path(), 0o600).expect("reopen");
    assert_eq!(ops, sample);
    assert_eq!(log.generation(), g);
    log.append(&encode_all(g, &sample[..1])).expect("append");
    drop(log);
    let (log, ops) = IntentLog::open(dir.path(), 0o600).expect("reopen");
    assert_eq!(ops.len(), sample.len() + 1);
    // Records a crash left survive a reset until they are marked replayed (a
    // shutdown before the replay must not drop them).
    log.reset().expect("reset before replay");
    assert!(log.bytes() > 0, "reset dropped records not yet replayed");
    drop(log);
    let (log, ops) = IntentLog::open(dir.path(), 0o600).expect("reopen");
    assert_eq!(ops.len(), sample.len() + 1);
    // After the replay and a reset nothing is replayed, and the generation moved on.
    log.mark_replayed();
    log.reset().expect("reset");
    assert_eq!(log.bytes(), 0);
    drop(log);
    let (log, ops) = IntentLog::open(dir.path(), 0o600).expect("reopen");
    assert!(ops.is_empty());
    assert!(log.generation() > g);
}

#[test]
fn an_unreadable_header_is_kept_aside_not_mounted_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join(INTENT_FILE),
        b"garbage that is no log at all",
    )
    .expect("w");
    let (log, ops) = IntentLog::open(dir.path(), 0o600).expect("open");
    assert!(ops.is_empty());
    assert!(dir.path().join("intent.log.bad").exists());
    log.append(&encode_all(log.generation(), &sample_ops()))
        .expect("append");
}

#[test]
fn decoders_never_panic_on_hostile_bytes() {
    let ops = sample_ops();
    let base = log_bytes(4, &ops);
    let mut rng = rng(31);
    let mut budget = Budget::new(1);
    while budget.next() {
        let bytes = if rng.gen_bool(0.7) {
            damaged(&mut rng, &base)
        } else {
            noise(&mut rng, 300)
        };
        let _ = read_log(&bytes);
        let _ = decode_header(&bytes);
        let at = rng.gen_range(0..=bytes.len());
        if let Some((_, len)) = decode_record(&bytes[at..], 4) {
            assert!(len <= bytes.len() - at);
        }
    }
}

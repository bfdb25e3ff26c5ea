//! Data-plane decoders (pack record headers, whole pack files, `.DISCARD` records)
//! against hostile bytes; see `fuzz_util`.

use rand::Rng;

use super::discard::{Checkpoint, DiscardEntry};
use super::pack;
use crate::fuzz_util::{corpus, damaged, hammer, noise, rng, Budget};
use crate::types::{ChunkHash, PackId};

#[test]
fn discard_log_records_never_panic() {
    let e = DiscardEntry {
        run: 3,
        pack: PackId(8),
        hash: ChunkHash([4; 16]),
        stored_len: 999,
    };
    hammer(8, &e.encode(), &e, DiscardEntry::decode);
    let c = Checkpoint {
        epoch: 2,
        len: 4096,
    };
    hammer(9, &c.encode(), &c, Checkpoint::decode);
    // Whole logs: real ones (and one written here with entries), damaged, opened.
    let mut logs: Vec<Vec<u8>> = corpus("discard").into_iter().map(|(_, b)| b).collect();
    if let Some(header) = logs.first().cloned() {
        let mut with_entries = header;
        with_entries.extend_from_slice(&e.encode());
        with_entries.extend_from_slice(&e.encode());
        logs.push(with_entries);
    }
    let mut rng = rng(13);
    let mut budget = Budget::new(16);
    let dir = tempfile::tempdir().expect("tempdir");
    while budget.next() {
        let base = &logs[rng.gen_range(0..logs.len())];
        let bytes = damaged(&mut rng, base);
        std::fs::write(dir.path().join(super::discard::DISCARD_FILE), &bytes).expect("write");
        let stored = rng.gen_bool(0.5).then_some(Checkpoint {
            epoch: rng.gen_range(0..3),
            len: rng.gen_range(0..200),
        });
        if let Ok((log, _)) = super::discard::DiscardLog::open(
            dir.path(),
            crate::datadir::DataDirPerms::OWNER_ONLY,
            stored,
        ) {
            let _ = log.entries();
        }
    }
}

#[test]
fn pack_headers_and_whole_pack_files_never_panic() {
    let payload = b"some payload bytes".to_vec();
    let rec = pack::encode_record(
        ChunkHash([3; 16]),
        crate::data::Codec::Raw,
        18,
        None,
        &payload,
    );
    let head = pack::decode_record_header(PackId(1), 16, &rec[..pack::RECORD_HEADER_LEN])
        .expect("valid header");
    hammer(10, &rec[..pack::RECORD_HEADER_LEN], &head, |b| {
        pack::decode_record_header(PackId(1), 16, b).ok()
    });
    // Whole files: a valid sealed pack, damaged, scanned and index-read.
    let mut file = pack::file_header();
    let loc = pack::Location {
        offset: file.len() as u64,
        stored_len: payload.len() as u32,
    };
    file.extend_from_slice(&rec);
    let end = file.len() as u64;
    file.extend_from_slice(&pack::encode_seal(&[(ChunkHash([3; 16]), loc)], end));
    whole_files(11, &[file], loc);
    // Real pack files from a mounted filesystem: a GC-rewritten sealed pack and an
    // empty active one.
    let real: Vec<Vec<u8>> = corpus("pack").into_iter().map(|(_, b)| b).collect();
    for (p, b) in corpus("pack") {
        let f = tempfile::tempfile().expect("tempfile");
        std::os::unix::fs::FileExt::write_all_at(&f, &b, 0).expect("write");
        let ok = pack::check_file_header(&f, PackId(1))
            .and_then(|()| pack::scan_records(&f, PackId(1), b.len() as u64));
        assert!(ok.is_ok(), "{} is not a valid pack: {ok:?}", p.display());
    }
    whole_files(12, &real, loc);
}

/// Damaged and random versions of the pack files `files`, written to a temp file and
/// opened by every whole-file reader.
fn whole_files(seed: u64, files: &[Vec<u8>], loc: pack::Location) {
    let mut rng = rng(seed);
    let tmp = tempfile::tempfile().expect("tempfile");
    let mut budget = Budget::new(4);
    while budget.next() {
        let base = &files[rng.gen_range(0..files.len())];
        let bytes = if rng.gen_bool(0.5) {
            damaged(&mut rng, base)
        } else {
            noise(&mut rng, base.len() * 2)
        };
        tmp.set_len(0).expect("truncate");
        std::os::unix::fs::FileExt::write_all_at(&tmp, &bytes, 0).expect("write");
        let len = bytes.len() as u64;
        let _ = pack::check_file_header(&tmp, PackId(1));
        let _ = pack::is_sealed(&tmp, PackId(1), len);
        let _ = pack::read_sealed_index(&tmp, PackId(1), len);
        let _ = pack::scan_records(&tmp, PackId(1), len);
        let _ = pack::read_record(&tmp, PackId(1), loc, &ChunkHash([3; 16]));
    }
}

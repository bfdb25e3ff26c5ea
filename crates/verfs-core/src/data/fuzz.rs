//! Data-plane decoders (pack record headers, whole pack files, `.DISCARD` records)
//! against hostile bytes; see `fuzz_util`.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::discard::{Checkpoint, DiscardEntry};
use super::pack;
use crate::fuzz_util::{damaged, hammer, noise, rounds};
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
    let mut rng = StdRng::seed_from_u64(11);
    let tmp = tempfile::tempfile().expect("tempfile");
    for _ in 0..rounds() / 4 {
        let bytes = if rng.gen_bool(0.5) {
            damaged(&mut rng, &file)
        } else {
            noise(&mut rng, file.len() * 2)
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

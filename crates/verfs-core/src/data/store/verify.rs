//! Verifying stored records in place for the online scrub: the same checks as
//! `fsck --read-data` ([`pack::verify_record`]), on the packs the daemon has open,
//! bypassing every cache so the bytes on disk are what is judged.

use std::collections::{HashMap, HashSet};

use super::{pack_path, Location, PackStore};
use crate::data::pack::{self, Damage, Fault, PackError, Verified};
use crate::data::packio::OpenMode;
use crate::types::{ChunkHash, PackId};

impl PackStore {
    /// Where pack `pack_id` holds the record of `hash` (the scrub sorts by it).
    ///
    /// Fails with `Missing` if the pack's index holds no such record, `Io` or `Corrupt`
    /// if the pack or its index cannot be read.
    pub fn record_location(
        &self,
        pack_id: PackId,
        hash: &ChunkHash,
    ) -> Result<Location, PackError> {
        self.locate(pack_id, hash).map(|at| at.loc())
    }

    /// Reads the record of `hash` in `pack_id` from disk and verifies it: CRC, decoding
    /// and the keyed id; an encrypted record is opened and checked with the vault's key
    /// while the vault is unlocked, else only its CRC is checked.
    ///
    /// Fails with the check that failed, a missing record included.
    pub fn verify_chunk(&self, pack_id: PackId, hash: &ChunkHash) -> Result<Verified, Fault> {
        let at = self.locate(pack_id, hash).map_err(|e| Fault {
            kind: Damage::of(&e),
            detail: e.to_string(),
        })?;
        let cipher = self.cipher();
        pack::verify_record(
            at.file(),
            pack_id,
            at.loc(),
            hash,
            Some(&self.hasher),
            cipher.as_deref(),
        )
    }

    /// The damaged records of pack `pack_id` that its index lost (their headers still
    /// name a chunk of `hashes`), by chunk: offset and the check each fails. Reads the
    /// whole pack once: only for chunks found missing.
    ///
    /// Fails if the pack cannot be opened or read.
    pub fn find_damaged_records(
        &self,
        pack_id: PackId,
        hashes: &HashSet<ChunkHash>,
    ) -> Result<HashMap<ChunkHash, (u64, Fault)>, PackError> {
        let io = |e| PackError::io(pack_id, 0, e);
        let file = self
            .fio
            .open(&pack_path(&self.dir, pack_id), OpenMode::Read)
            .map_err(io)?;
        let len = file.size().map_err(io)?;
        let found = pack::find_damaged_records(&*file, pack_id, len, &|h| hashes.contains(h))?;
        Ok(found.into_iter().map(|(h, off, f)| (h, (off, f))).collect())
    }
}

//! The pack being appended to: the appender's state (behind the append mutex) and the
//! index readers consult (behind its own short lock, never held across I/O), plus
//! creating, reopening and sealing packs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use super::{io, pack_path};
use crate::data::pack::{self, Location, PackError};
use crate::data::packio::{OpenMode, PackFile, PackIo};
use crate::datadir::DataDirPerms;
use crate::types::{ChunkHash, PackId};

/// Writeback of the active pack is started every time this much was appended since the
/// last start (flush-behind). Without it the page cache collects everything appended
/// between syncs, and an `fsync` of one small file waits for all of it to reach the
/// disk (one of the causes in `architecture.md`, "fsync under load"). 1 MiB rather
/// than 8: 15.7-16.9 sqlite commits/s during a copy against 12.8-14.9, alternating, and
/// the same 1 GiB write time (3.9-4.9 s against 4.3-4.6 s).
const FLUSH_BEHIND: u64 = 1 << 20;

/// What readers of the active pack need: its file and the records appended so far. The
/// index lock is taken for one map access at a time, so a reader never waits for a
/// `pwrite`, an `fsync` or a rotation.
pub(super) struct ActiveView {
    pub id: PackId,
    pub file: Arc<dyn PackFile>,
    index: RwLock<HashMap<ChunkHash, Location>>,
}

impl ActiveView {
    fn new(id: PackId, file: Arc<dyn PackFile>, index: HashMap<ChunkHash, Location>) -> ActiveView {
        ActiveView {
            id,
            file,
            index: RwLock::new(index),
        }
    }

    /// Where the record of `hash` is, if it was appended to this pack.
    pub fn find(&self, hash: &ChunkHash) -> Option<Location> {
        self.index
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .copied()
    }

    fn insert(&self, hash: ChunkHash, loc: Location) {
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(hash, loc);
    }
}

/// The appender's side of the active pack.
pub(super) struct ActivePack {
    pub view: Arc<ActiveView>,
    pub len: u64,
    /// Writeback has been started for everything below this offset.
    writeback_from: u64,
    /// Records in append order (the sealed index is built from it).
    pub order: Vec<(ChunkHash, Location)>,
}

impl ActivePack {
    /// The pack's id.
    pub fn id(&self) -> PackId {
        self.view.id
    }

    /// Appends one record (`head` then `payload`) and publishes it to readers.
    ///
    /// Fails on a write error; the pack is cut back to its last whole record then.
    pub fn append(
        &mut self,
        hash: ChunkHash,
        head: &[u8],
        payload: &[u8],
    ) -> Result<Location, PackError> {
        let off = self.len;
        let file = &self.view.file;
        let written = file
            .write_all_at(head, off)
            .and_then(|_| file.write_all_at(payload, off + head.len() as u64));
        if let Err(e) = written {
            // Drop the partial record so the pack ends at its last whole record.
            let _ = file.set_len(off);
            return Err(io(self.id(), off, e));
        }
        let loc = Location {
            offset: off,
            stored_len: payload.len() as u32,
        };
        self.len += (head.len() + payload.len()) as u64;
        self.order.push((hash, loc));
        self.view.insert(hash, loc);
        Ok(loc)
    }

    /// Starts writeback of what was appended since the last start once that reaches
    /// [`FLUSH_BEHIND`]; it does not wait for it, and durability still comes from
    /// `PackStore::sync`.
    pub fn flush_behind(&mut self) {
        let len = self.len - self.writeback_from;
        if len < FLUSH_BEHIND {
            return;
        }
        self.view.file.start_writeback(self.writeback_from, len);
        self.writeback_from = self.len;
    }

    /// Appends the index and footer and syncs the pack, making it immutable.
    ///
    /// Fails if the write or the sync fails.
    pub fn seal(&self) -> Result<(), PackError> {
        let seal = pack::encode_seal(&self.order, self.len);
        let file = &self.view.file;
        file.write_all_at(&seal, self.len)
            .map_err(|e| io(self.id(), self.len, e))?;
        file.sync_all().map_err(|e| io(self.id(), self.len, e))
    }

    /// Creates pack `id` with its header, synced with its directory entry.
    ///
    /// Fails if the file exists or cannot be written.
    pub fn create(
        fio: &dyn PackIo,
        dir: &Path,
        perms: DataDirPerms,
        id: PackId,
    ) -> Result<ActivePack, PackError> {
        let path = pack_path(dir, id);
        let file = fio
            .open(&path, OpenMode::CreateNew(perms.file_mode()))
            .map_err(|e| io(id, 0, e))?;
        let header = pack::file_header();
        file.write_all_at(&header, 0).map_err(|e| io(id, 0, e))?;
        file.sync_all().map_err(|e| io(id, 0, e))?;
        fio.sync_dir(dir).map_err(|e| io(id, 0, e))?;
        let len = header.len() as u64;
        Ok(ActivePack {
            view: Arc::new(ActiveView::new(id, file, HashMap::new())),
            len,
            writeback_from: len,
            order: Vec::new(),
        })
    }

    /// Reopens unsealed pack `id` by scanning its records; returns it and the bytes cut
    /// from a torn tail (only when `cut_torn_tail`, after an unclean shutdown).
    ///
    /// Fails if the pack cannot be opened, read or repaired.
    pub fn reopen(
        fio: &dyn PackIo,
        dir: &Path,
        id: PackId,
        cut_torn_tail: bool,
    ) -> Result<(ActivePack, u64), PackError> {
        let file = fio
            .open(&pack_path(dir, id), OpenMode::ReadWrite)
            .map_err(|e| io(id, 0, e))?;
        let len = file.size().map_err(|e| io(id, 0, e))?;
        if len < pack::HEADER_LEN {
            // Crash while creating it: rewrite the header.
            file.write_all_at(&pack::file_header(), 0)
                .map_err(|e| io(id, 0, e))?;
            file.set_len(pack::HEADER_LEN).map_err(|e| io(id, 0, e))?;
        } else if let Err(e) = pack::check_file_header(&*file, id) {
            tracing::error!(error = %e, "active pack header damaged; scanning its records anyway");
        }
        let len = len.max(pack::HEADER_LEN);
        let scan = pack::scan_records(&*file, id, len)?;
        for (from, to) in &scan.damaged {
            tracing::error!(%id, from, to, "damaged records in pack; chunks there read as EIO");
        }
        let mut end = len;
        let mut cut = 0;
        if scan.damaged_tail {
            if cut_torn_tail {
                cut = len - scan.valid_end;
                tracing::warn!(%id, cut, "cutting half-written tail of active pack");
                file.set_len(scan.valid_end)
                    .map_err(|e| io(id, scan.valid_end, e))?;
                file.sync_all().map_err(|e| io(id, 0, e))?;
                end = scan.valid_end;
            } else {
                tracing::error!(%id, from = scan.valid_end, "damaged bytes after the last record of an unsealed pack kept; appending after them");
            }
        }
        let index = scan.entries.iter().copied().collect();
        let view = Arc::new(ActiveView::new(id, file, index));
        let active = ActivePack {
            view,
            len: end,
            writeback_from: end,
            order: scan.entries,
        };
        Ok((active, cut))
    }

    /// Seals an unsealed pack left behind by a crash mid-rotation.
    ///
    /// Fails as [`ActivePack::reopen`] and [`ActivePack::seal`] do.
    pub fn seal_existing(
        fio: &dyn PackIo,
        dir: &Path,
        id: PackId,
        cut_torn_tail: bool,
    ) -> Result<(), PackError> {
        let (a, _) = Self::reopen(fio, dir, id, cut_torn_tail)?;
        a.seal()
    }
}

//! Space-level file operations: SEEK_DATA/SEEK_HOLE, fallocate, access.

use crate::error::{FsError, FsResult};
use crate::fs::node::{Node, Tree};
use crate::fs::{Caller, Fs};
use crate::meta::Reader;
use crate::types::{FileKind, Ino};
use crate::write::Done;

/// `lseek` whence: next data at or after the offset.
pub const SEEK_DATA: i32 = 3;
/// `lseek` whence: next hole at or after the offset.
pub const SEEK_HOLE: i32 = 4;

/// Where `whence` lands from `offset`, given the sorted, merged data ranges of a file of
/// `size` bytes. End of file counts as a hole.
pub(crate) fn seek_in(data: &[(u64, u64)], size: u64, offset: u64, whence: i32) -> FsResult<u64> {
    if offset >= size {
        return Err(FsError::NoSuchOffset);
    }
    match whence {
        SEEK_DATA => data
            .iter()
            .find(|(_, e)| *e > offset)
            .map(|(s, _)| (*s).max(offset))
            .filter(|p| *p < size)
            .ok_or(FsError::NoSuchOffset),
        SEEK_HOLE => {
            let mut pos = offset;
            for (s, e) in data {
                if *s > pos {
                    break;
                }
                pos = pos.max(*e);
            }
            Ok(pos.min(size))
        }
        _ => Err(FsError::Inval),
    }
}

impl Fs {
    /// `lseek` with SEEK_DATA or SEEK_HOLE: holes are ranges with no stored chunk
    /// (never written, or all zeros). Writes still in the batcher count as data.
    ///
    /// Fails with `NoSuchOffset` (ENXIO) at or past end of file or with no data after
    /// `offset`, `Inval` for another `whence`.
    pub fn seek_data_hole(&self, ino: Ino, offset: i64, whence: i32) -> FsResult<u64> {
        let offset = u64::try_from(offset).map_err(|_| FsError::Inval)?;
        let ino = match self.node(ino)? {
            Node::Stored(Tree::Live, i) => i,
            Node::Stored(tree, i) => {
                let view = self.view_of(tree)?;
                let size = view.inode(i)?.ok_or(FsError::NotFound)?.size;
                let ranges = view
                    .extents_overlapping(i, offset, size, self.engine.max_extent_len())?
                    .iter()
                    .map(|e| (e.offset, e.end()))
                    .collect();
                return seek_in(&crate::write::merge_ranges(ranges), size, offset, whence);
            }
            Node::SnapDir => return Err(FsError::IsDir),
        };
        // One overlay snapshot and the view it fits: a commit in between would count a
        // held tail neither as committed nor as pending.
        let (snap, view) = self.engine.overlay_and_view(ino)?;
        let inode = view.inode(ino)?.ok_or(FsError::NotFound)?;
        let size = snap.ops.iter().fold(inode.size, |s, op| op.size_after(s));
        let mut ranges: Vec<(u64, u64)> = view
            .extents_overlapping(ino, offset, size, self.engine.max_extent_len())?
            .iter()
            .map(|e| (e.offset, e.end()))
            .collect();
        ranges.extend(snap.data_ranges());
        let merged = crate::write::merge_ranges(ranges);
        seek_in(&merged, size, offset, whence)
    }

    /// fallocate: mode 0 extends the file (space is not reserved: chunks are written
    /// when data is, and unwritten ranges are holes that read as zeros); KEEP_SIZE alone
    /// is accepted and changes nothing; PUNCH_HOLE (with KEEP_SIZE, as the kernel
    /// requires) and ZERO_RANGE set the range to zeros, dropping the chunks inside it.
    /// Collapse and insert range are EOPNOTSUPP.
    pub fn fallocate(&self, ino: Ino, offset: u64, len: u64, mode: i32, done: Done<()>) {
        let ino = match self.live(ino) {
            Ok(i) => i,
            Err(e) => return done(Err(e)),
        };
        let end = match offset.checked_add(len) {
            Some(e) if len > 0 => e,
            _ => return done(Err(FsError::Inval)),
        };
        match mode {
            0 => match self.engine.inode_with_pending(ino) {
                Ok(i) if i.kind != FileKind::File => done(Err(FsError::NotSupported)),
                Ok(i) if i.size >= end => done(Ok(())),
                Ok(_) => self.batcher.set_size(
                    ino,
                    end,
                    Box::new(|_| {}),
                    Box::new(move |r| done(r.map(|_| ()))),
                ),
                Err(e) => done(Err(e)),
            },
            m if m == libc::FALLOC_FL_KEEP_SIZE => {
                done(self.engine.inode_with_pending(ino).map(|_| ()))
            }
            m if m == libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE
                || m == libc::FALLOC_FL_ZERO_RANGE
                || m == libc::FALLOC_FL_ZERO_RANGE | libc::FALLOC_FL_KEEP_SIZE =>
            {
                let extend = m & libc::FALLOC_FL_KEEP_SIZE == 0;
                let reply: Done<crate::meta::Inode> = Box::new(move |r| done(r.map(|_| ())));
                self.batcher.zero(ino, offset, len, extend, reply)
            }
            _ => done(Err(FsError::NotSupported)),
        }
    }

    /// access(2): existence (F_OK) and permission bits for the caller. With
    /// `default_permissions` the kernel checks these itself; this answers callers that
    /// ask anyway.
    ///
    /// Fails with `NotFound` or `Access`.
    pub fn access(&self, caller: Caller, ino: Ino, mask: i32) -> FsResult<()> {
        let (i, live) = match self.node(ino)? {
            Node::Stored(tree, i) => (
                self.view_of(tree)?.inode(i)?.ok_or(FsError::NotFound)?,
                tree == Tree::Live,
            ),
            Node::SnapDir => (self.snapdir_attr()?, false),
        };
        if mask == libc::F_OK {
            return Ok(());
        }
        if mask & libc::W_OK != 0 && !live {
            return Err(FsError::ReadOnly);
        }
        let perm = u32::from(i.perm);
        let granted = if caller.uid == 0 {
            // Root may read and write anything; execute needs some x bit (or a dir).
            let x = i.kind == FileKind::Dir || perm & 0o111 != 0;
            libc::R_OK | libc::W_OK | if x { libc::X_OK } else { 0 }
        } else {
            let bits = if caller.uid == i.uid {
                perm >> 6
            } else if caller.gid == i.gid {
                perm >> 3
            } else {
                perm
            } & 7;
            (if bits & 4 != 0 { libc::R_OK } else { 0 })
                | (if bits & 2 != 0 { libc::W_OK } else { 0 })
                | (if bits & 1 != 0 { libc::X_OK } else { 0 })
        };
        if mask & !granted != 0 {
            return Err(FsError::Access);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_data_and_hole_follow_linux() {
        let data = [(0, 10), (20, 30)];
        assert_eq!(seek_in(&data, 40, 0, SEEK_DATA), Ok(0));
        assert_eq!(seek_in(&data, 40, 5, SEEK_HOLE), Ok(10));
        assert_eq!(seek_in(&data, 40, 12, SEEK_DATA), Ok(20));
        assert_eq!(seek_in(&data, 40, 12, SEEK_HOLE), Ok(12));
        assert_eq!(seek_in(&data, 40, 25, SEEK_HOLE), Ok(30));
        assert_eq!(
            seek_in(&data, 40, 31, SEEK_DATA),
            Err(FsError::NoSuchOffset)
        );
        assert_eq!(seek_in(&data, 40, 31, SEEK_HOLE), Ok(31));
        assert_eq!(
            seek_in(&data, 40, 40, SEEK_HOLE),
            Err(FsError::NoSuchOffset)
        );
        assert_eq!(seek_in(&[], 40, 0, SEEK_HOLE), Ok(0));
        assert_eq!(seek_in(&[(0, 40)], 40, 0, SEEK_HOLE), Ok(40));
        assert_eq!(seek_in(&data, 40, 0, 9), Err(FsError::Inval));
    }
}

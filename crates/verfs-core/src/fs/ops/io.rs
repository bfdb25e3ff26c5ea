//! Open files: open, read, write, flush, release, fsync.

use crate::error::{FsError, FsResult};
use crate::fs::node::{Node, Tree};
use crate::fs::{Caller, FileOpen, Fs};
use crate::meta::Reader;
use crate::types::{FileHandle, FileKind, Ino, Timestamp};
use crate::write::Done;

/// Most bytes one copy_file_range call copies byte by byte (within one file, or out
/// of a snapshot).
const MAX_COPY: u64 = 16 << 20;

impl Fs {
    /// Opens `ino` with the access of `flags`.
    ///
    /// Fails with `NotFound` if the inode is gone, `IsDir` for a directory.
    pub fn open(&self, _caller: Caller, ino: Ino, flags: i32) -> FsResult<FileHandle> {
        let mut open = FileOpen::from_flags(ino, flags);
        let (tree, stored) = match self.node(ino)? {
            Node::Stored(Tree::Live, i) => (Tree::Live, i),
            Node::Stored(tree, i) if !open.write && flags & libc::O_TRUNC == 0 => (tree, i),
            Node::Stored(..) => return Err(FsError::ReadOnly),
            Node::SnapDir => return Err(FsError::IsDir),
        };
        if let Some(inode) = self.view_of(tree)?.inode(stored)? {
            open.vault = self.vault_stamp(&inode)?;
        }
        let fh = self.handles.open_file(open);
        let check = self.view_of(tree).and_then(|v| match v.inode(stored)? {
            None => Err(FsError::NotFound),
            Some(i) if i.kind == FileKind::Dir => Err(FsError::IsDir),
            Some(_) => Ok(()),
        });
        match check {
            Ok(()) => Ok(fh),
            Err(e) => {
                self.handles.close_file(fh);
                Err(e)
            }
        }
    }

    /// Reads up to `size` bytes at `offset`; short only at end of file.
    ///
    /// Fails with `BadHandle` for an unknown handle, `Io`/`Corrupt` if stored data
    /// cannot be read back intact.
    pub fn read(&self, ino: Ino, fh: FileHandle, offset: u64, size: u32) -> FsResult<Vec<u8>> {
        let f = self.handles.file(fh)?;
        if f.ino != ino {
            return Err(FsError::BadHandle);
        }
        self.vault_check_stamp(f.vault)?;
        let ino = match self.node(ino)? {
            Node::Stored(Tree::Live, i) => i,
            Node::Stored(tree, i) => {
                return self.engine.read_at(&self.view_of(tree)?, i, offset, size)
            }
            Node::SnapDir => return Err(FsError::IsDir),
        };
        let (data, loaded) = self.engine.read_windowed(ino, offset, size, &f.window)?;
        if loaded {
            self.touch_atime(ino)?;
        }
        Ok(data)
    }

    /// relatime: a read updates atime only if it is not newer than mtime or ctime, or is
    /// more than a day old, so most reads commit nothing. Checked when a read loads
    /// extents from metadata (the first read through a handle, a non-sequential read,
    /// or one after the file changed), not on every request of a sequential reader.
    fn touch_atime(&self, ino: Ino) -> FsResult<()> {
        const DAY: i64 = 24 * 3600;
        if self.noatime {
            return Ok(());
        }
        let Some(i) = self.engine.meta.view()?.inode(ino)? else {
            return Ok(());
        };
        let now = Timestamp::now();
        if i.atime > i.mtime && i.atime > i.ctime && now.secs - i.atime.secs < DAY {
            return Ok(());
        }
        self.engine.meta.write(|txn| {
            if let Some(mut i) = txn.inode(ino)? {
                i.atime = now;
                txn.put_inode(&i)?;
            }
            Ok::<_, FsError>(())
        })
    }

    /// Queues a write; `done` gets the byte count once the batch holding it committed.
    pub fn write(&self, ino: Ino, fh: FileHandle, offset: u64, data: &[u8], done: Done<u32>) {
        if let Err(e) = self.live(ino) {
            return done(Err(e));
        }
        match self.handles.file(fh) {
            Ok(f) if f.ino == ino && f.write => match self.vault_check_stamp(f.vault) {
                Ok(()) => self.batcher.write(ino, offset, data, done),
                Err(e) => done(Err(e)),
            },
            Ok(_) | Err(_) => done(Err(FsError::BadHandle)),
        }
    }

    /// Called at every `close(2)` of a descriptor: reports a failed commit of earlier
    /// writes to the file, as Linux reports write-back errors at close. It does not wait
    /// for writes still queued (they are visible to every reader already).
    ///
    /// Fails with `BadHandle` for an unknown handle, or with the deferred write error.
    pub fn flush(&self, ino: Ino, fh: FileHandle) -> FsResult<()> {
        self.handles.file(fh)?;
        match self.batcher.take_error(ino) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Forgets a handle; the last close of an unlinked file frees it.
    ///
    /// Fails if freeing the inode fails (the orphan mark stays; it is freed at restart).
    pub fn release(&self, _ino: Ino, fh: FileHandle) -> FsResult<()> {
        let Some((ino, last)) = self.handles.close_file(fh) else {
            return Err(FsError::BadHandle);
        };
        if !last || !matches!(self.node(ino), Ok(Node::Stored(Tree::Live, _))) {
            return Ok(());
        }
        let unlinked = self
            .engine
            .meta
            .view()?
            .inode(ino)?
            .is_none_or(|i| i.nlink == 0);
        if unlinked {
            self.release_inode(ino)?;
        }
        Ok(())
    }

    /// copy_file_range: between two files, whole source chunks inside the range become
    /// destination extents sharing the same chunks (refcount +1; nothing is read or
    /// written) and only the edges are copied and re-chunked, up to 1 GiB per call
    /// (callers loop on short counts). Within one file the bytes are copied (16 MiB per
    /// call). `done` gets the byte count once the copy has committed.
    #[allow(clippy::too_many_arguments)]
    pub fn copy_range(
        &self,
        ino_in: Ino,
        fh_in: FileHandle,
        off_in: u64,
        ino_out: Ino,
        fh_out: FileHandle,
        off_out: u64,
        len: u64,
        done: Done<u32>,
    ) {
        let (Ok(f_in), Ok(f_out)) = (self.handles.file(fh_in), self.handles.file(fh_out)) else {
            return done(Err(FsError::BadHandle));
        };
        if f_in.ino != ino_in || !f_in.read || f_out.ino != ino_out || !f_out.write {
            return done(Err(FsError::BadHandle));
        }
        let stamps = self
            .vault_check_stamp(f_in.vault)
            .and_then(|()| self.vault_check_stamp(f_out.vault));
        if let Err(e) = stamps {
            return done(Err(e));
        }
        if let Err(e) = self.live(ino_out) {
            return done(Err(e));
        }
        let source = match self.node(ino_in) {
            Ok(Node::Stored(Tree::Live, _)) => None,
            Ok(Node::Stored(tree, i)) => Some((tree, i)),
            Ok(Node::SnapDir) => return done(Err(FsError::IsDir)),
            Err(e) => return done(Err(e)),
        };
        if let Some((tree, i)) = source {
            return self.copy_out_of_snapshot(tree, i, off_in, ino_out, off_out, len, done);
        }
        if ino_in == ino_out || f_in.vault.is_some() != f_out.vault.is_some() {
            // Overlapping ranges of one file, or across the vault's boundary (where
            // chunks are never shared, so the bytes are stored in the destination's
            // domain): copy the bytes.
            let n = len.min(MAX_COPY) as u32;
            return match self.engine.read(ino_in, off_in, n) {
                Ok(data) if data.is_empty() => done(Ok(0)),
                Ok(data) => self.batcher.write(ino_out, off_out, &data, done),
                Err(e) => done(Err(e)),
            };
        }
        self.batcher.clone_range(
            ino_in,
            off_in,
            ino_out,
            off_out,
            len.min(u64::from(u32::MAX)),
            done,
        );
    }

    /// copy_file_range out of a snapshot: the bytes are copied (16 MiB per call);
    /// content-defined chunks dedup to the chunks the snapshot already holds, so nothing
    /// new is stored.
    #[allow(clippy::too_many_arguments)]
    fn copy_out_of_snapshot(
        &self,
        tree: Tree,
        ino_in: Ino,
        off_in: u64,
        ino_out: Ino,
        off_out: u64,
        len: u64,
        done: Done<u32>,
    ) {
        let n = len.min(MAX_COPY) as u32;
        let read = self
            .view_of(tree)
            .and_then(|v| self.engine.read_at(&v, ino_in, off_in, n));
        match read {
            Ok(data) if data.is_empty() => done(Ok(0)),
            Ok(data) => self.batcher.write(ino_out, off_out, &data, done),
            Err(e) => done(Err(e)),
        }
    }

    /// Makes everything written so far durable; `done` runs after packs and metadata
    /// are synced. Concurrent fsyncs share one sync.
    /// A commit failure of the file's earlier writes is reported here if no write or
    /// close reported it yet.
    pub fn fsync(&self, ino: Ino, done: Done<()>) {
        if !matches!(self.node(ino), Ok(Node::Stored(Tree::Live, _))) {
            // Nothing in a snapshot is ever dirty.
            return done(Ok(()));
        }
        let batcher = self.batcher.clone();
        self.batcher.sync(
            ino,
            Box::new(move |res| {
                done(res.and_then(|()| batcher.take_error(ino).map_or(Ok(()), Err)))
            }),
        );
    }
}

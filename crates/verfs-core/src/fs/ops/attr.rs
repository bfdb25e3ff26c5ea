//! setattr: mode, owner, size, times. Permission rules for chmod/chown/utimes are
//! enforced by the kernel (`default_permissions`); a size change goes through the write
//! batcher so it is ordered with the file's writes.

use crate::engine::Engine;
use crate::error::FsResult;
use crate::fs::ops::acl::{self, ACL_ACCESS};
use crate::fs::{Attr, Caller, Fs};
use crate::meta::{Inode, Reader};
use crate::types::{FileHandle, Ino, Timestamp};
use crate::write::Done;
use crate::FsError;

/// A time to set: the current time or an explicit one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSet {
    /// `UTIME_NOW`.
    Now,
    /// An explicit time.
    At(Timestamp),
}

/// The changes of one setattr call; `None` leaves a field alone.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits (type bits ignored).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeSet>,
    /// New modification time.
    pub mtime: Option<TimeSet>,
    /// New change time (otherwise now, when anything changed).
    pub ctime: Option<Timestamp>,
    /// The handle the change came through (ftruncate, futimens).
    pub fh: Option<FileHandle>,
}

impl SetAttr {
    /// Applies every change but the size to `inode`.
    pub fn apply(&self, inode: &mut Inode) {
        let now = Timestamp::now();
        let resolve = |t: TimeSet| match t {
            TimeSet::Now => now,
            TimeSet::At(t) => t,
        };
        if let Some(m) = self.mode {
            inode.perm = (m & 0o7777) as u16;
        }
        if let Some(u) = self.uid {
            inode.uid = u;
        }
        if let Some(g) = self.gid {
            inode.gid = g;
        }
        if let Some(t) = self.atime {
            inode.atime = resolve(t);
        }
        if let Some(t) = self.mtime {
            inode.mtime = resolve(t);
        }
        inode.ctime = self.ctime.unwrap_or(now);
    }
}

impl Fs {
    /// Applies `req` to `ino`; `done` gets the new attributes. A size change is queued
    /// behind the file's pending writes; so are explicit times when writes are pending
    /// (their commit would otherwise set mtime after the caller did, breaking
    /// `rsync -t`, `tar`, `cp -p`); other changes commit at once.
    pub fn setattr(&self, _caller: Caller, ino: Ino, req: SetAttr, done: Done<Attr>) {
        let ino = match self.live(ino) {
            Ok(i) => i,
            Err(e) => return done(Err(e)),
        };
        if let Some(size) = req.size {
            return self.batcher.set_size(
                ino,
                size,
                Box::new(move |i: &mut Inode| req.apply(i)),
                done,
            );
        }
        let sets_times = req.atime.is_some() || req.mtime.is_some();
        if sets_times && self.engine.pending.has_pending(ino) {
            let engine = self.engine.clone();
            return self.batcher.barrier(Box::new(move |res| {
                done(res.and_then(|()| set_attr_now(&engine, ino, &req)))
            }));
        }
        done(set_attr_now(&self.engine, ino, &req));
    }
}

fn set_attr_now(engine: &Engine, ino: Ino, req: &SetAttr) -> FsResult<Attr> {
    let inode = engine.meta.write(|txn| {
        let mut inode = txn.inode(ino)?.ok_or(FsError::NotFound)?;
        req.apply(&mut inode);
        txn.put_inode(&inode)?;
        if req.mode.is_some() {
            // With POSIX ACLs the filesystem keeps the access ACL in step with chmod.
            if let Some(acl) = txn.xattr(ino, ACL_ACCESS)? {
                if let Some(updated) = acl::chmod(&acl, inode.perm) {
                    txn.put_xattr(ino, ACL_ACCESS, &updated)?;
                }
            }
        }
        Ok::<_, FsError>(inode)
    })?;
    // Writes still in a batch change the size and times the caller must see.
    if engine.pending.has_pending(ino) {
        return engine.inode_with_pending(ino);
    }
    Ok(inode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::FileKind;

    #[test]
    fn apply_changes_only_given_fields() {
        let t = Timestamp { secs: 5, nanos: 6 };
        let mut i = Inode {
            ino: Ino(2),
            kind: FileKind::File,
            perm: 0o644,
            uid: 1,
            gid: 2,
            nlink: 1,
            size: 10,
            atime: t,
            mtime: t,
            ctime: t,
            crtime: t,
            rdev: 0,
            flags: 0,
            generation: 0,
            data_version: 0,
            parent: Ino(1),
            blocks: 0,
        };
        let req = SetAttr {
            mode: Some(0o100_755),
            mtime: Some(TimeSet::At(Timestamp { secs: 9, nanos: 0 })),
            ..SetAttr::default()
        };
        req.apply(&mut i);
        assert_eq!(i.perm, 0o755);
        assert_eq!((i.uid, i.gid), (1, 2));
        assert_eq!(i.mtime.secs, 9);
        assert_eq!(i.atime, t);
        assert!(i.ctime > t);
    }
}

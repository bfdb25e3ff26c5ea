//! `fuser::Filesystem` for VerFSNext: each method parses the request, calls the core and
//! replies or maps the error.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle as FuseFh, Filesystem,
    FopenFlags, Generation, INodeNo, IoctlFlags, KernelConfig, LockOwner, OpenFlags, PollEvents,
    PollFlags, PollNotifier, RenameFlags, ReplyAttr, ReplyBmap, ReplyCreate, ReplyData,
    ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl, ReplyLseek, ReplyOpen,
    ReplyPoll, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use verfs_core::fs::{Caller, Fs, SetAttr};
use verfs_core::types::{FileHandle, Ino};

use super::attr::{errno, to_attr, to_kind, to_time, to_timestamp};
use super::sched::favour_request_thread;

/// The FUSE face of a mounted [`Fs`].
pub struct Adapter {
    fs: Arc<Fs>,
    ttl: Duration,
    /// Nice value of the request threads ([`favour_request_thread`]).
    request_nice: i32,
}

impl Adapter {
    /// Wraps a started filesystem whose request threads run at nice `request_nice`.
    pub fn new(fs: Arc<Fs>, request_nice: i32) -> Adapter {
        let ttl = fs.attr_ttl();
        Adapter {
            fs,
            ttl,
            request_nice,
        }
    }

    fn entry(&self, op: &str, r: verfs_core::FsResult<verfs_core::fs::Attr>, reply: ReplyEntry) {
        match r {
            Ok(a) => reply.entry(&self.ttl, &to_attr(&a), Generation(a.generation)),
            Err(e) => reply.error(errno(op, &e)),
        }
    }
}

fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
        pid: req.pid(),
    }
}

fn ino(i: INodeNo) -> Ino {
    Ino(i.0)
}

fn fh(f: FuseFh) -> FileHandle {
    FileHandle(f.0)
}

fn name(n: &OsStr) -> &[u8] {
    n.as_bytes()
}

fn empty(op: &'static str, r: verfs_core::FsResult<()>, reply: ReplyEmpty) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(op, &e)),
    }
}

/// The xattr size-probe protocol: size 0 asks for the length, a too-small buffer is
/// ERANGE, otherwise the bytes.
fn xattr_reply(v: Vec<u8>, size: u32, reply: ReplyXattr) {
    if size == 0 {
        reply.size(v.len() as u32);
    } else if (size as usize) < v.len() {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(&v);
    }
}

impl Filesystem for Adapter {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        use fuser::InitFlags as F;
        for cap in [
            F::FUSE_DO_READDIRPLUS,
            F::FUSE_READDIRPLUS_AUTO,
            F::FUSE_PARALLEL_DIROPS,
            F::FUSE_POSIX_ACL,
            F::FUSE_DONT_MASK,
        ] {
            if config.add_capabilities(cap).is_err() {
                tracing::debug!(?cap, "kernel lacks capability");
            }
        }
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        favour_request_thread(self.request_nice);
        self.entry("lookup", self.fs.lookup(ino(parent), name(n)), reply);
    }

    // Nothing is kept per kernel lookup: inodes live in metadata and unlinked-but-open
    // files are tracked by open handles, so forget (and fuser's default batch_forget,
    // which calls it) has nothing to release.
    fn forget(&self, _req: &Request, _ino: INodeNo, _nlookup: u64) {}

    fn getattr(&self, _req: &Request, i: INodeNo, _fh: Option<FuseFh>, reply: ReplyAttr) {
        favour_request_thread(self.request_nice);
        match self.fs.getattr(ino(i)) {
            Ok(a) => reply.attr(&self.ttl, &to_attr(&a)),
            Err(e) => reply.error(errno("getattr", &e)),
        }
    }

    fn setattr(
        &self,
        req: &Request,
        i: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        f: Option<FuseFh>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let changes = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(to_time),
            mtime: mtime.map(to_time),
            ctime: ctime.map(to_timestamp),
            fh: f.map(fh),
        };
        let ttl = self.ttl;
        self.fs.setattr(
            caller(req),
            ino(i),
            changes,
            Box::new(move |r| match r {
                Ok(a) => reply.attr(&ttl, &to_attr(&a)),
                Err(e) => reply.error(errno("setattr", &e)),
            }),
        );
    }

    fn readlink(&self, _req: &Request, i: INodeNo, reply: ReplyData) {
        match self.fs.readlink(ino(i)) {
            Ok(t) => reply.data(&t),
            Err(e) => reply.error(errno("readlink", &e)),
        }
    }

    fn mknod(
        &self,
        req: &Request,
        p: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        self.entry(
            "mknod",
            self.fs
                .mknod(caller(req), ino(p), name(n), mode, umask, rdev),
            reply,
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        p: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(
            "mkdir",
            self.fs.mkdir(caller(req), ino(p), name(n), mode, umask),
            reply,
        );
    }

    fn unlink(&self, req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        empty(
            "unlink",
            self.fs.unlink(caller(req), ino(p), name(n)),
            reply,
        );
    }

    fn rmdir(&self, req: &Request, p: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        empty("rmdir", self.fs.rmdir(caller(req), ino(p), name(n)), reply);
    }

    fn symlink(
        &self,
        req: &Request,
        p: INodeNo,
        n: &OsStr,
        target: &std::path::Path,
        reply: ReplyEntry,
    ) {
        let t = target.as_os_str().as_bytes();
        self.entry(
            "symlink",
            self.fs.symlink(caller(req), ino(p), name(n), t),
            reply,
        );
    }

    fn rename(
        &self,
        req: &Request,
        p: INodeNo,
        n: &OsStr,
        np: INodeNo,
        nn: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let r = self.fs.rename(
            caller(req),
            ino(p),
            name(n),
            ino(np),
            name(nn),
            flags.bits(),
        );
        empty("rename", r, reply);
    }

    fn link(&self, req: &Request, i: INodeNo, np: INodeNo, nn: &OsStr, reply: ReplyEntry) {
        self.entry(
            "link",
            self.fs.link(caller(req), ino(i), ino(np), name(nn)),
            reply,
        );
    }

    fn open(&self, req: &Request, i: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.open(caller(req), ino(i), flags.0) {
            Ok(h) => reply.opened(FuseFh(h.0), FopenFlags::empty()),
            Err(e) => reply.error(errno("open", &e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        i: INodeNo,
        f: FuseFh,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        favour_request_thread(self.request_nice);
        match self.fs.read(ino(i), fh(f), offset, size) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno("read", &e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        i: INodeNo,
        f: FuseFh,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.fs.write(
            ino(i),
            fh(f),
            offset,
            data,
            Box::new(move |r| match r {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno("write", &e)),
            }),
        );
    }

    fn flush(
        &self,
        _req: &Request,
        i: INodeNo,
        f: FuseFh,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        empty("flush", self.fs.flush(ino(i), fh(f)), reply);
    }

    fn release(
        &self,
        _req: &Request,
        i: INodeNo,
        f: FuseFh,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        empty("release", self.fs.release(ino(i), fh(f)), reply);
    }

    fn fsync(&self, _req: &Request, i: INodeNo, _f: FuseFh, _datasync: bool, reply: ReplyEmpty) {
        self.fs
            .fsync(ino(i), Box::new(move |r| empty("fsync", r, reply)));
    }

    fn fsyncdir(&self, _req: &Request, i: INodeNo, _f: FuseFh, _datasync: bool, reply: ReplyEmpty) {
        self.fs
            .fsync(ino(i), Box::new(move |r| empty("fsyncdir", r, reply)));
    }

    fn access(&self, req: &Request, i: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        empty(
            "access",
            self.fs.access(caller(req), ino(i), mask.bits()),
            reply,
        );
    }

    fn lseek(
        &self,
        _req: &Request,
        i: INodeNo,
        _f: FuseFh,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        match self.fs.seek_data_hole(ino(i), offset, whence) {
            Ok(p) => reply.offset(p as i64),
            Err(e) => reply.error(errno("lseek", &e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        i: INodeNo,
        _f: FuseFh,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        self.fs.fallocate(
            ino(i),
            offset,
            length,
            mode,
            Box::new(move |r| empty("fallocate", r, reply)),
        );
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        fh_in: FuseFh,
        offset_in: u64,
        ino_out: INodeNo,
        fh_out: FuseFh,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        self.fs.copy_range(
            ino(ino_in),
            fh(fh_in),
            offset_in,
            ino(ino_out),
            fh(fh_out),
            offset_out,
            len,
            Box::new(move |r| match r {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno("copy_file_range", &e)),
            }),
        );
    }

    // No ioctl is defined on VerFSNext files: unknown ioctls are ENOTTY, as on any Linux
    // filesystem (see docs/errno.md).
    fn ioctl(
        &self,
        _req: &Request,
        _i: INodeNo,
        _f: FuseFh,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    // Regular files are always ready for reading and writing, as on disk filesystems.
    fn poll(
        &self,
        _req: &Request,
        _i: INodeNo,
        _f: FuseFh,
        _ph: PollNotifier,
        events: PollEvents,
        _flags: PollFlags,
        reply: ReplyPoll,
    ) {
        reply.poll(events & (PollEvents::POLLIN | PollEvents::POLLOUT));
    }

    // There is no block device under VerFSNext: bmap has no answer (and the kernel only
    // asks fuseblk filesystems, so FIBMAP on a file here returns block 0).
    fn bmap(&self, _req: &Request, _i: INodeNo, _blocksize: u32, _idx: u64, reply: ReplyBmap) {
        reply.error(Errno::ENOSYS);
    }

    fn opendir(&self, _req: &Request, i: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.opendir(ino(i)) {
            Ok(h) => reply.opened(FuseFh(h.0), FopenFlags::empty()),
            Err(e) => reply.error(errno("opendir", &e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        _i: INodeNo,
        f: FuseFh,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let r = self.fs.readdir(fh(f), offset, false, |e| {
            reply.add(
                INodeNo(e.ino.0),
                e.offset,
                to_kind(e.kind),
                OsStr::from_bytes(&e.name),
            )
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("readdir", &e)),
        }
    }

    fn readdirplus(
        &self,
        _req: &Request,
        _i: INodeNo,
        f: FuseFh,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.ttl;
        let r = self.fs.readdir(fh(f), offset, true, |e| match &e.attr {
            Some(a) => reply.add(
                INodeNo(e.ino.0),
                e.offset,
                OsStr::from_bytes(&e.name),
                &ttl,
                &to_attr(a),
                Generation(a.generation),
            ),
            // Vanished between listing and stat: skip it rather than fail the listing.
            None => false,
        });
        match r {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno("readdirplus", &e)),
        }
    }

    fn releasedir(
        &self,
        _req: &Request,
        _i: INodeNo,
        f: FuseFh,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.fs.releasedir(fh(f));
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _i: INodeNo, reply: ReplyStatfs) {
        match self.fs.statfs() {
            Ok(s) => reply.statfs(
                s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
            ),
            Err(e) => reply.error(errno("statfs", &e)),
        }
    }

    fn setxattr(
        &self,
        _req: &Request,
        i: INodeNo,
        n: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        empty(
            "setxattr",
            self.fs.setxattr(ino(i), name(n), value, flags),
            reply,
        );
    }

    fn getxattr(&self, _req: &Request, i: INodeNo, n: &OsStr, size: u32, reply: ReplyXattr) {
        match self.fs.getxattr(ino(i), name(n)) {
            Ok(v) => xattr_reply(v, size, reply),
            Err(e) => reply.error(errno("getxattr", &e)),
        }
    }

    fn listxattr(&self, _req: &Request, i: INodeNo, size: u32, reply: ReplyXattr) {
        match self.fs.listxattr(ino(i)) {
            Ok(v) => xattr_reply(v, size, reply),
            Err(e) => reply.error(errno("listxattr", &e)),
        }
    }

    fn removexattr(&self, _req: &Request, i: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        empty("removexattr", self.fs.removexattr(ino(i), name(n)), reply);
    }

    fn create(
        &self,
        req: &Request,
        p: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        match self
            .fs
            .create(caller(req), ino(p), name(n), mode, umask, flags)
        {
            Ok((a, h)) => reply.created(
                &self.ttl,
                &to_attr(&a),
                Generation(a.generation),
                FuseFh(h.0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(errno("create", &e)),
        }
    }
}

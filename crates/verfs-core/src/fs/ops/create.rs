//! Creating names: mkdir, create, mknod, symlink.

use crate::error::{FsError, FsResult};
use crate::fs::ops::acl::{inherit, ACL_ACCESS, ACL_DEFAULT};
use crate::fs::{check_name, Attr, Caller, FileOpen, Fs};
use crate::meta::{Dirent, Inode, Reader, WriteTxn, INODE_FLAG_VAULT};
use crate::types::{FileHandle, FileKind, Ino, Timestamp};

/// Longest symlink target (PATH_MAX including the terminating NUL).
const SYMLINK_MAX: usize = 4095;

/// What to create.
struct NewNode<'a> {
    kind: FileKind,
    /// Requested permission bits, before the umask or a default ACL applies.
    perm: u16,
    umask: u16,
    rdev: u32,
    target: Option<&'a [u8]>,
}

impl Fs {
    /// Creates directory `name` in `parent`.
    ///
    /// Fails with `Exists`, `NotFound`/`NotDir` for a bad parent, `NameTooLong`.
    pub fn mkdir(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
    ) -> FsResult<Attr> {
        let perm = (mode & 0o7777) as u16;
        let umask = (umask & 0o777) as u16;
        self.make_node(
            caller,
            parent,
            name,
            NewNode {
                kind: FileKind::Dir,
                perm,
                umask,
                rdev: 0,
                target: None,
            },
        )
    }

    /// Creates and opens regular file `name` in `parent`.
    ///
    /// Fails as [`Fs::mkdir`] does.
    pub fn create(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        flags: i32,
    ) -> FsResult<(Attr, FileHandle)> {
        let perm = (mode & 0o7777) as u16;
        let umask = (umask & 0o777) as u16;
        let attr = self.make_node(
            caller,
            parent,
            name,
            NewNode {
                kind: FileKind::File,
                perm,
                umask,
                rdev: 0,
                target: None,
            },
        )?;
        let mut open = FileOpen::from_flags(attr.ino, flags);
        open.vault = self.vault_stamp(&attr)?;
        let fh = self.handles.open_file(open);
        Ok((attr, fh))
    }

    /// Creates a node of the kind in `mode`'s type bits (file, fifo, socket, device).
    ///
    /// Fails with `Inval` for a directory or unknown type, else as [`Fs::mkdir`].
    pub fn mknod(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        mode: u32,
        umask: u32,
        rdev: u32,
    ) -> FsResult<Attr> {
        let kind = FileKind::from_mode(mode).ok_or(FsError::Inval)?;
        if matches!(kind, FileKind::Dir | FileKind::Symlink) {
            return Err(FsError::Inval);
        }
        let perm = (mode & 0o7777) as u16;
        let umask = (umask & 0o777) as u16;
        let rdev = if matches!(kind, FileKind::CharDev | FileKind::BlockDev) {
            rdev
        } else {
            0
        };
        self.make_node(
            caller,
            parent,
            name,
            NewNode {
                kind,
                perm,
                umask,
                rdev,
                target: None,
            },
        )
    }

    /// Creates symlink `name` in `parent` pointing at `target`.
    ///
    /// Fails with `NameTooLong` for a target over PATH_MAX, else as [`Fs::mkdir`].
    pub fn symlink(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> FsResult<Attr> {
        if target.len() > SYMLINK_MAX {
            return Err(FsError::NameTooLong);
        }
        if target.is_empty() {
            return Err(FsError::NotFound);
        }
        self.make_node(
            caller,
            parent,
            name,
            NewNode {
                kind: FileKind::Symlink,
                perm: 0o777,
                umask: 0,
                rdev: 0,
                target: Some(target),
            },
        )
    }

    fn make_node(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        node: NewNode<'_>,
    ) -> FsResult<Attr> {
        check_name(name)?;
        let parent = self.live_new_name(parent, name)?;
        let ino = self.alloc_ino()?;
        self.engine.meta.write(|txn| {
            let now = Timestamp::now();
            let mut p = live_dir(txn, parent)?;
            self.vault_open(&p)?;
            if txn.dirent(parent, name)?.is_some() {
                return Err(FsError::Exists);
            }
            let default_acl = match node.kind {
                FileKind::Symlink => None,
                _ => txn.xattr(parent, ACL_DEFAULT)?,
            };
            let inherited = default_acl
                .as_deref()
                .and_then(|d| inherit(d, node.perm, node.kind == FileKind::Dir));
            let perm = match &inherited {
                Some(i) => i.perm,
                None => node.perm & !node.umask,
            };
            let inode = new_inode(caller, &p, ino, perm, &node, now);
            txn.put_inode(&inode)?;
            if let Some(i) = &inherited {
                if let Some(a) = &i.access {
                    txn.put_xattr(ino, ACL_ACCESS, a)?;
                }
                if let Some(d) = &i.default {
                    txn.put_xattr(ino, ACL_DEFAULT, d)?;
                }
            }
            txn.put_dirent(
                parent,
                name,
                &Dirent {
                    ino,
                    kind: node.kind,
                },
            )?;
            if let Some(t) = node.target {
                txn.put_symlink(ino, t)?;
            }
            if node.kind == FileKind::Dir {
                p.nlink += 1;
            }
            p.mtime = now;
            p.ctime = now;
            txn.put_inode(&p)?;
            Ok(inode)
        })
    }
}

/// The directory `ino`, which must exist, be a directory and not be removed.
pub(crate) fn live_dir(txn: &WriteTxn, ino: Ino) -> FsResult<Inode> {
    let p = txn.inode(ino)?.ok_or(FsError::NotFound)?;
    if p.kind != FileKind::Dir {
        return Err(FsError::NotDir);
    }
    if p.nlink == 0 {
        return Err(FsError::NotFound);
    }
    Ok(p)
}

/// A new inode owned by the caller; a set-group-ID parent passes on its group (and, to
/// directories, the set-group-ID bit).
fn new_inode(
    caller: Caller,
    parent: &Inode,
    ino: Ino,
    perm: u16,
    node: &NewNode<'_>,
    now: Timestamp,
) -> Inode {
    let sgid_parent = parent.perm & libc::S_ISGID as u16 != 0;
    let gid = if sgid_parent { parent.gid } else { caller.gid };
    let mut perm = perm;
    if sgid_parent && node.kind == FileKind::Dir {
        perm |= libc::S_ISGID as u16;
    }
    Inode {
        ino,
        kind: node.kind,
        perm,
        uid: caller.uid,
        gid,
        nlink: if node.kind == FileKind::Dir { 2 } else { 1 },
        size: node.target.map_or(0, |t| t.len() as u64),
        atime: now,
        mtime: now,
        ctime: now,
        crtime: now,
        rdev: node.rdev,
        // A new inode is in the vault exactly when its directory is.
        flags: parent.flags & INODE_FLAG_VAULT,
        generation: 0,
        data_version: 0,
        parent: parent.ino,
        blocks: 0,
    }
}

impl FileOpen {
    /// The access an `open(2)` flags word grants.
    pub fn from_flags(ino: Ino, flags: i32) -> FileOpen {
        let acc = flags & libc::O_ACCMODE;
        FileOpen {
            ino,
            read: acc == libc::O_RDONLY || acc == libc::O_RDWR,
            write: acc == libc::O_WRONLY || acc == libc::O_RDWR,
            window: Default::default(),
            vault: None,
        }
    }
}

impl Fs {
    /// Adds hard link `newname` in `newparent` to the non-directory `ino`.
    ///
    /// Fails with `Perm` for a directory, `Exists`, `NotFound`, `TooManyLinks`.
    pub fn link(
        &self,
        _caller: Caller,
        ino: Ino,
        newparent: Ino,
        newname: &[u8],
    ) -> FsResult<Attr> {
        check_name(newname)?;
        let ino = self.live(ino)?;
        let newparent = self.live_new_name(newparent, newname)?;
        self.engine.meta.write(|txn| {
            let now = Timestamp::now();
            let mut p = live_dir(txn, newparent)?;
            let mut inode = txn.inode(ino)?.ok_or(FsError::NotFound)?;
            if inode.kind == FileKind::Dir {
                return Err(FsError::Perm);
            }
            if (p.flags ^ inode.flags) & INODE_FLAG_VAULT != 0 {
                // A link across the vault's boundary would give one file two domains.
                return Err(FsError::CrossDevice);
            }
            self.vault_open(&p)?;
            if inode.nlink == 0 {
                return Err(FsError::NotFound);
            }
            if inode.nlink >= u32::MAX - 1 {
                return Err(FsError::TooManyLinks);
            }
            if txn.dirent(newparent, newname)?.is_some() {
                return Err(FsError::Exists);
            }
            txn.put_dirent(
                newparent,
                newname,
                &Dirent {
                    ino,
                    kind: inode.kind,
                },
            )?;
            inode.nlink += 1;
            inode.ctime = now;
            txn.put_inode(&inode)?;
            p.mtime = now;
            p.ctime = now;
            txn.put_inode(&p)?;
            Ok(inode)
        })
    }
}

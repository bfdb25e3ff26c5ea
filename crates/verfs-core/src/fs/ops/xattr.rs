//! Extended attributes in every namespace the kernel passes (user, trusted, security,
//! system.posix_acl_*), stored as versioned `X` records. Permission checks per namespace
//! are the kernel's (it refuses `trusted.*` to non-root before calling us).

use crate::error::{FsError, FsResult};
use crate::fs::node::Node;
use crate::fs::ops::acl::{self, ACL_ACCESS};
use crate::fs::Fs;
use crate::meta::Reader;
use crate::types::{Ino, Timestamp};

/// `setxattr` flag: fail if the attribute exists.
pub const XATTR_CREATE: i32 = 1;
/// `setxattr` flag: fail if the attribute does not exist.
pub const XATTR_REPLACE: i32 = 2;
/// Longest attribute name (Linux `XATTR_NAME_MAX`).
const XATTR_NAME_MAX: usize = 255;
/// Largest attribute value (Linux `XATTR_SIZE_MAX`).
const XATTR_SIZE_MAX: usize = 65536;

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name.contains(&0) {
        return Err(FsError::Inval);
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(FsError::Range);
    }
    Ok(())
}

impl Fs {
    /// Sets `name` to `value`, honouring XATTR_CREATE / XATTR_REPLACE.
    ///
    /// Fails with `Exists` / `NoData` for the flags, `Range` for a name over 255 bytes,
    /// `TooBig` for a value over 64 KiB, `NotFound` for a missing inode.
    pub fn setxattr(&self, ino: Ino, name: &[u8], value: &[u8], flags: i32) -> FsResult<()> {
        let ino = self.live(ino)?;
        check_name(name)?;
        if value.len() > XATTR_SIZE_MAX {
            return Err(FsError::TooBig);
        }
        if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
            return Err(FsError::Inval);
        }
        self.engine.meta.write(|txn| {
            let mut inode = txn.inode(ino)?.ok_or(FsError::NotFound)?;
            let exists = txn.xattr(ino, name)?.is_some();
            if flags & XATTR_CREATE != 0 && exists {
                return Err(FsError::Exists);
            }
            if flags & XATTR_REPLACE != 0 && !exists {
                return Err(FsError::NoData);
            }
            if name == ACL_ACCESS {
                // The filesystem keeps mode and access ACL in step (the kernel does not
                // under FUSE_POSIX_ACL); an ACL that says no more than the mode is not kept.
                let (bits, equivalent) = acl::mode_of(value).ok_or(FsError::Inval)?;
                inode.perm = (inode.perm & !0o777) | bits;
                if equivalent {
                    txn.delete_xattr(ino, name)?;
                } else {
                    txn.put_xattr(ino, name, value)?;
                }
            } else {
                txn.put_xattr(ino, name, value)?;
            }
            inode.ctime = Timestamp::now();
            txn.put_inode(&inode)?;
            Ok(())
        })
    }

    /// The value of `name`.
    ///
    /// Fails with `NoData` if absent, `NotFound` for a missing inode.
    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> FsResult<Vec<u8>> {
        check_name(name)?;
        let Node::Stored(tree, ino) = self.node(ino)? else {
            return Err(FsError::NoData);
        };
        let view = self.view_of(tree)?;
        view.inode(ino)?.ok_or(FsError::NotFound)?;
        view.xattr(ino, name)?.ok_or(FsError::NoData)
    }

    /// Every attribute name, each followed by a NUL, as listxattr(2) returns them.
    ///
    /// Fails with `NotFound` for a missing inode.
    pub fn listxattr(&self, ino: Ino) -> FsResult<Vec<u8>> {
        let Node::Stored(tree, ino) = self.node(ino)? else {
            return Ok(Vec::new());
        };
        let view = self.view_of(tree)?;
        view.inode(ino)?.ok_or(FsError::NotFound)?;
        let mut out = Vec::new();
        for n in view.xattr_names(ino)? {
            out.extend_from_slice(&n);
            out.push(0);
        }
        Ok(out)
    }

    /// Removes `name`.
    ///
    /// Fails with `NoData` if absent, `NotFound` for a missing inode.
    pub fn removexattr(&self, ino: Ino, name: &[u8]) -> FsResult<()> {
        let ino = self.live(ino)?;
        check_name(name)?;
        self.engine.meta.write(|txn| {
            let mut inode = txn.inode(ino)?.ok_or(FsError::NotFound)?;
            if !txn.delete_xattr(ino, name)? {
                return Err(FsError::NoData);
            }
            inode.ctime = Timestamp::now();
            txn.put_inode(&inode)?;
            Ok(())
        })
    }
}

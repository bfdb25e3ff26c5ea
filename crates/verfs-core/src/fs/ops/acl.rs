//! POSIX ACL inheritance. With `FUSE_POSIX_ACL` the kernel checks ACLs (stored as the
//! `system.posix_acl_*` xattrs) and keeps mode and ACL mask in step, but a new file's
//! ACL is the filesystem's job: it inherits the parent's default ACL, masked by the
//! requested mode, instead of the umask (what `posix_acl_create` does for disk
//! filesystems).

/// Xattr holding a file's access ACL.
pub const ACL_ACCESS: &[u8] = b"system.posix_acl_access";
/// Xattr holding a directory's default ACL.
pub const ACL_DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// Parses the kernel's xattr form: version u32, then (tag u16, perm u16, id u32) LE.
fn parse(bytes: &[u8]) -> Option<Vec<Entry>> {
    let (head, body) = bytes.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*head) != VERSION || body.len() % 8 != 0 {
        return None;
    }
    Some(
        body.chunks_exact(8)
            .map(|c| Entry {
                tag: u16::from_le_bytes([c[0], c[1]]),
                perm: u16::from_le_bytes([c[2], c[3]]),
                id: u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            })
            .collect(),
    )
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut out = VERSION.to_le_bytes().to_vec();
    for e in entries {
        out.extend_from_slice(&e.tag.to_le_bytes());
        out.extend_from_slice(&e.perm.to_le_bytes());
        out.extend_from_slice(&e.id.to_le_bytes());
    }
    out
}

/// What a new inode gets from its parent's default ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inherited {
    /// Permission bits (with the non-rwx bits of the requested mode kept).
    pub perm: u16,
    /// The access ACL to store, unless the mode says it all.
    pub access: Option<Vec<u8>>,
    /// The default ACL a new directory carries on.
    pub default: Option<Vec<u8>>,
}

/// Applies a parent's default ACL to a new inode created with `mode` (not umasked).
/// Returns `None` if the default ACL is malformed (the caller then uses the umask).
pub fn inherit(default_acl: &[u8], mode: u16, is_dir: bool) -> Option<Inherited> {
    let mut acl = parse(default_acl)?;
    let mut m = u32::from(mode);
    let mut extended = false;
    let (mut group_obj, mut mask) = (None, None);
    for (i, e) in acl.iter_mut().enumerate() {
        match e.tag {
            USER_OBJ => {
                e.perm &= ((m >> 6) & 7) as u16;
                m &= (u32::from(e.perm) << 6) | !0o700;
            }
            USER | GROUP => extended = true,
            GROUP_OBJ => group_obj = Some(i),
            OTHER => {
                e.perm &= (m & 7) as u16;
                m &= u32::from(e.perm) | !0o007;
            }
            MASK => {
                mask = Some(i);
                extended = true;
            }
            _ => return None,
        }
    }
    let g = mask.or(group_obj)?;
    acl[g].perm &= ((m >> 3) & 7) as u16;
    m &= (u32::from(acl[g].perm) << 3) | !0o070;
    let perm = ((u32::from(mode) & !0o777) | (m & 0o777)) as u16;
    Some(Inherited {
        perm,
        access: extended.then(|| encode(&acl)),
        default: is_dir.then(|| default_acl.to_vec()),
    })
}

/// The permission bits an access ACL implies (owner, group class = mask or group,
/// other) and whether the ACL says nothing beyond them (three entries), in which case it
/// is not stored, as `posix_acl_update_mode` does. `None` for a malformed ACL.
pub fn mode_of(access_acl: &[u8]) -> Option<(u16, bool)> {
    let acl = parse(access_acl)?;
    let find = |tag: u16| acl.iter().find(|e| e.tag == tag).map(|e| e.perm & 7);
    let owner = find(USER_OBJ)?;
    let other = find(OTHER)?;
    let group = find(MASK).or(find(GROUP_OBJ))?;
    let equivalent = acl.len() == 3;
    Some(((owner << 6) | (group << 3) | other, equivalent))
}

/// The access ACL after `chmod(mode)`: the owner, group-class (the mask if there is
/// one) and other entries take the new mode's bits, as `posix_acl_chmod` does.
/// Returns `None` if the ACL is malformed.
pub fn chmod(access_acl: &[u8], mode: u16) -> Option<Vec<u8>> {
    let mut acl = parse(access_acl)?;
    let has_mask = acl.iter().any(|e| e.tag == MASK);
    for e in acl.iter_mut() {
        match e.tag {
            USER_OBJ => e.perm = (mode >> 6) & 7,
            MASK => e.perm = (mode >> 3) & 7,
            GROUP_OBJ if !has_mask => e.perm = (mode >> 3) & 7,
            OTHER => e.perm = mode & 7,
            _ => {}
        }
    }
    Some(encode(&acl))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(tag: u16, perm: u16, id: u32) -> Entry {
        Entry { tag, perm, id }
    }

    #[test]
    fn minimal_default_acl_acts_like_a_umask() {
        let def = encode(&[e(USER_OBJ, 7, 0), e(GROUP_OBJ, 5, 0), e(OTHER, 0, 0)]);
        let got = inherit(&def, 0o666, false).unwrap();
        assert_eq!(got.perm, 0o640);
        assert_eq!(got.access, None);
        assert_eq!(got.default, None);
    }

    #[test]
    fn named_entries_make_an_access_acl_masked_by_mode() {
        let def = encode(&[
            e(USER_OBJ, 7, 0),
            e(USER, 7, 1234),
            e(GROUP_OBJ, 5, 0),
            e(MASK, 7, 0),
            e(OTHER, 5, 0),
        ]);
        let got = inherit(&def, 0o2750, true).unwrap();
        // The mask takes the group bits of the mode; the group class shows the mask.
        assert_eq!(got.perm, 0o2750);
        let acl = parse(&got.access.unwrap()).unwrap();
        assert!(acl.contains(&e(MASK, 5, 0)));
        assert!(
            acl.contains(&e(USER, 7, 1234)),
            "named entries keep their perms"
        );
        assert!(acl.contains(&e(OTHER, 0, 0)));
        assert_eq!(got.default.unwrap(), def);
    }

    #[test]
    fn chmod_rewrites_owner_mask_and_other() {
        let acl = encode(&[
            e(USER_OBJ, 6, 0),
            e(USER, 6, 7),
            e(GROUP_OBJ, 4, 0),
            e(MASK, 6, 0),
            e(OTHER, 4, 0),
        ]);
        let got = parse(&chmod(&acl, 0o640).unwrap()).unwrap();
        assert_eq!(
            got,
            vec![
                e(USER_OBJ, 6, 0),
                e(USER, 6, 7),
                e(GROUP_OBJ, 4, 0),
                e(MASK, 4, 0),
                e(OTHER, 0, 0)
            ]
        );
    }

    #[test]
    fn mode_of_an_acl_uses_the_mask() {
        let minimal = encode(&[e(USER_OBJ, 6, 0), e(GROUP_OBJ, 4, 0), e(OTHER, 0, 0)]);
        assert_eq!(mode_of(&minimal), Some((0o640, true)));
        let full = encode(&[
            e(USER_OBJ, 7, 0),
            e(USER, 7, 9),
            e(GROUP_OBJ, 4, 0),
            e(MASK, 5, 0),
            e(OTHER, 1, 0),
        ]);
        assert_eq!(mode_of(&full), Some((0o751, false)));
        assert_eq!(mode_of(b"junk"), None);
    }

    #[test]
    fn malformed_acls_are_refused() {
        assert!(inherit(b"", 0o644, false).is_none());
        assert!(inherit(&[1, 0, 0, 0], 0o644, false).is_none());
        assert!(inherit(&encode(&[e(0x40, 7, 0)]), 0o644, false).is_none());
    }
}

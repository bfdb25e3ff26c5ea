//! One file per operation family.

pub(crate) mod acl;
pub(crate) mod attr;
pub(crate) mod create;
pub(crate) mod dir;
pub(crate) mod io;
pub(crate) mod lookup;
pub(crate) mod remove;
pub(crate) mod rename;
pub(crate) mod space;
pub(crate) mod xattr;

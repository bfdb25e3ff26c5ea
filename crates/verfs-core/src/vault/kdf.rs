//! The key-encryption key: Argon2id over the password, keyed with the key file's secret.
//!
//! `KEK = Argon2id(password, salt, secret = key file secret, m, t, p, 32 bytes)`, version
//! 0x13. Taking the key file's secret as Argon2's *secret* input (RFC 9106 §3.1, "K")
//! means an attacker with the data dir but not the key file cannot even start guessing
//! passwords, while the memory-hard cost still protects a stolen key file whose password
//! is weak.
//!
//! The parameters are stored in the wrap record, so the decoder hands us values an
//! attacker or a bit flip may have chosen: [`KdfParams::validate`] bounds them before
//! Argon2 allocates `m` KiB, and every caller validates before deriving.

use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::keyfile::KeyFileSecret;
use super::VaultError;

/// KEK length: an XChaCha20-Poly1305 key.
pub(super) const KEK_LEN: usize = 32;
/// Largest accepted memory cost, in KiB: 4 GiB. More than any machine this runs on
/// should spend on an unlock, and a bound on what a damaged record can make us
/// allocate.
pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
/// Largest accepted number of passes.
pub const MAX_T_COST: u32 = 64;
/// Largest accepted parallelism (lanes).
pub const MAX_P_COST: u32 = 64;

/// Argon2id cost parameters, stored in the wrap record so a later build (or a
/// `change-password` with stronger settings) can still unlock an older vault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB (Argon2 `m`); at least 8 × `p_cost`, at most [`MAX_M_COST_KIB`].
    pub m_cost_kib: u32,
    /// Passes over the memory (Argon2 `t`); 1 ..= [`MAX_T_COST`].
    pub t_cost: u32,
    /// Lanes (Argon2 `p`); 1 ..= [`MAX_P_COST`].
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// RFC 9106 §4, second recommended option: 64 MiB, 3 passes, 4 lanes — for machines
    /// where the first option's 2 GiB is too much, which is most of ours.
    fn default() -> Self {
        KdfParams {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 4,
        }
    }
}

impl KdfParams {
    /// Checks the bounds documented on the fields.
    ///
    /// Fails with `BadParams` naming the first value out of bounds. Run on every
    /// decoded wrap record, so damaged parameters are an error rather than a 4 GiB
    /// allocation or an hour of hashing.
    pub fn validate(&self) -> Result<(), VaultError> {
        let bad = |why: String| Err(VaultError::BadParams(why));
        if self.p_cost == 0 || self.p_cost > MAX_P_COST {
            return bad(format!("p_cost {} not in 1..={MAX_P_COST}", self.p_cost));
        }
        if self.t_cost == 0 || self.t_cost > MAX_T_COST {
            return bad(format!("t_cost {} not in 1..={MAX_T_COST}", self.t_cost));
        }
        let min_m = 8 * self.p_cost;
        if self.m_cost_kib < min_m || self.m_cost_kib > MAX_M_COST_KIB {
            return bad(format!(
                "m_cost {} KiB not in {min_m}..={MAX_M_COST_KIB} (8 KiB per lane, 4 GiB at most)",
                self.m_cost_kib
            ));
        }
        Ok(())
    }

    /// The validated parameters in Argon2's own type.
    fn to_argon2(self) -> Result<Params, VaultError> {
        self.validate()?;
        Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(KEK_LEN))
            .map_err(|e| VaultError::BadParams(format!("argon2: {e}")))
    }
}

/// The key-encryption key. Zeroized on drop; no `Clone`, no `Debug`.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(super) struct Kek([u8; KEK_LEN]);

impl Kek {
    /// The raw key, for the XChaCha20-Poly1305 that wraps the folder key.
    pub(super) fn as_bytes(&self) -> &[u8; KEK_LEN] {
        &self.0
    }
}

/// Runs Argon2id. Always the full run whatever the inputs, so a wrong password and a
/// wrong key file cost the same time and are told apart by nothing.
///
/// Fails with `BadParams` if `params` are out of bounds or Argon2 refuses them (out of
/// memory included).
pub(super) fn derive_kek(
    password: &[u8],
    salt: &[u8],
    secret: &KeyFileSecret,
    params: KdfParams,
) -> Result<Kek, VaultError> {
    let argon = Argon2::new_with_secret(
        secret.as_bytes(),
        Algorithm::Argon2id,
        Version::V0x13,
        params.to_argon2()?,
    )
    .map_err(|e| VaultError::BadParams(format!("argon2: {e}")))?;
    let mut kek = Kek([0u8; KEK_LEN]);
    argon
        .hash_password_into(password, salt, &mut kek.0)
        .map_err(|e| VaultError::BadParams(format!("argon2: {e}")))?;
    Ok(kek)
}

//! Identifiers: distribution ids, request ids and tokens.

use std::cell::Cell;

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Fills `buf` from the operating system's random source.
pub fn random_bytes(buf: &mut [u8]) {
    // The OS source does not fail on Linux once booted; a failure here means the
    // process cannot make safe ids at all.
    if let Err(err) = getrandom::fill(buf) {
        panic!("operating system random source failed: {err}");
    }
}

/// A distribution id in CloudFront's shape: `E` and 13 upper-case base32 characters.
pub fn distribution_id() -> String {
    prefixed_id('E')
}

/// An id for a non-distribution resource (policies, invalidations), same shape.
pub fn prefixed_id(prefix: char) -> String {
    let mut bytes = [0u8; 13];
    random_bytes(&mut bytes);
    let mut id = String::with_capacity(14);
    id.push(prefix);
    id.extend(bytes.iter().map(|b| BASE32[(b & 31) as usize] as char));
    id
}

/// Lower-case hex of `bytes`, two digits each.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// A bearer token: 32 random bytes, hex.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    random_bytes(&mut bytes);
    hex(&bytes)
}

/// Whether two secrets are equal, in a time that does not depend on where
/// they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

thread_local! {
    static REQUEST_RNG: Cell<u64> = Cell::new({
        let mut seed = [0u8; 8];
        random_bytes(&mut seed);
        u64::from_le_bytes(seed) | 1
    });
}

/// 64 bits from a per-thread generator seeded by the OS (wyrand): fast and
/// uniform, not a secret.
pub fn random_u64() -> u64 {
    REQUEST_RNG.with(|state| {
        let s = state.get().wrapping_add(0xa076_1d64_78bd_642f);
        state.set(s);
        let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    })
}

/// A request id: 128 bits of [`random_u64`], as 26 base32 characters. Unique
/// enough to find one request in logs; not a secret.
pub fn request_id() -> String {
    let mut v = (u128::from(random_u64()) << 64) | u128::from(random_u64());
    let mut out = String::with_capacity(26);
    for _ in 0..26 {
        out.push(BASE32[(v & 31) as usize] as char);
        v >>= 5;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn ids_have_their_shape_and_differ() {
        let a = distribution_id();
        assert_eq!(a.len(), 14);
        assert!(a.starts_with('E'));
        assert_ne!(a, distribution_id());
        let r = request_id();
        assert_eq!(r.len(), 26);
        assert_ne!(r, request_id());
        assert_eq!(token().len(), 64);
    }
}

//! XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha): HChaCha20 derives a subkey
//! from the key and the first 16 nonce bytes; ChaCha20-Poly1305 (RFC 8439)
//! then runs under that subkey with the nonce `0u32 || nonce[16..24]`.
//!
//! HChaCha20 comes from the `chacha20` crate; the bulk ChaCha20-Poly1305 from
//! aws-lc, whose assembly runs about twice as fast as a portable
//! implementation on the hot path of every backup and restore
//! (`cargo bench --bench hot_paths -- seal`). A test checks the result
//! against an independent XChaCha20-Poly1305, and the golden vectors pin it.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use chacha20::cipher::consts::U10;
use zeroize::{Zeroize, Zeroizing};

use super::envelope::{NONCE_LEN, TAG_LEN};

/// The RFC 8439 key for one XChaCha nonce, and that nonce's last 8 bytes as
/// the inner 12-byte nonce.
fn inner(key: &[u8; 32], nonce: &[u8; NONCE_LEN]) -> Option<(LessSafeKey, Nonce)> {
    let mut head = [0u8; 16];
    head.copy_from_slice(&nonce[..16]);
    let mut subkey = Zeroizing::new([0u8; 32]);
    let mut derived = chacha20::hchacha::<U10>(key.into(), &head.into());
    subkey.copy_from_slice(&derived);
    derived.as_mut_slice().zeroize();
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, subkey.as_ref()).ok()?;
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&nonce[16..]);
    Some((LessSafeKey::new(unbound), Nonce::assume_unique_for_key(n)))
}

/// Encrypts `buf` in place and returns the tag; `None` only if the AEAD
/// refuses its input (beyond 256 GiB, which no sealed object reaches).
pub(super) fn seal(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_LEN]> {
    let (key, nonce) = inner(key, nonce)?;
    let tag = key.seal_in_place_separate_tag(nonce, Aad::from(aad), buf).ok()?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(tag.as_ref());
    Some(out)
}

/// Decrypts `buf` (ciphertext followed by the tag) in place and returns the
/// plaintext length; `None` if authentication fails.
pub(super) fn open(key: &[u8; 32], nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut [u8]) -> Option<usize> {
    let (key, nonce) = inner(key, nonce)?;
    key.open_in_place(nonce, Aad::from(aad), buf)
        .ok()
        .map(|plain| plain.len())
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::aead::{AeadInPlace, KeyInit};
    use chacha20poly1305::{XChaCha20Poly1305, XNonce};

    use super::*;

    #[test]
    fn matches_an_independent_xchacha20_poly1305() {
        let key = [7u8; 32];
        let nonce: [u8; NONCE_LEN] = std::array::from_fn(|i| i as u8 * 3);
        for len in [0usize, 1, 63, 64, 65, 1000, 70_000] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let mut ours = plain.clone();
            let tag = seal(&key, &nonce, b"ad", &mut ours).unwrap();
            let mut theirs = plain.clone();
            let their_tag = XChaCha20Poly1305::new((&key).into())
                .encrypt_in_place_detached(XNonce::from_slice(&nonce), b"ad", &mut theirs)
                .unwrap();
            assert_eq!(ours, theirs, "ciphertext of {len} bytes");
            assert_eq!(tag[..], their_tag[..], "tag of {len} bytes");
            let mut sealed = ours.clone();
            sealed.extend_from_slice(&tag);
            assert_eq!(open(&key, &nonce, b"ad", &mut sealed), Some(len));
            assert_eq!(&sealed[..len], &plain[..]);
            let mut bad = ours;
            bad.extend_from_slice(&tag);
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert_eq!(open(&key, &nonce, b"ad", &mut bad), None);
            let mut wrong_ad = sealed.clone();
            wrong_ad[..len].copy_from_slice(&theirs_cipher(&key, &nonce, &plain));
            assert_eq!(open(&key, &nonce, b"xx", &mut wrong_ad), None);
        }
    }

    fn theirs_cipher(key: &[u8; 32], nonce: &[u8; NONCE_LEN], plain: &[u8]) -> Vec<u8> {
        let mut c = plain.to_vec();
        XChaCha20Poly1305::new(key.into())
            .encrypt_in_place_detached(XNonce::from_slice(nonce), b"ad", &mut c)
            .unwrap();
        c
    }
}

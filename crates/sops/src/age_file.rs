//! Writing an age file the way Go age (and so sops) does: one recipient stanza and no "grease"
//! stanza (the Rust `age` crate always adds one), so a new `enc` has exactly the size and line
//! shape of the ones sops writes. The stanza itself comes from the `age` crate; the header MAC,
//! payload and armor follow the age v1 spec (age-encryption.org/v1).

use age_core::format::FileKey;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _};
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac as _};
use rand::RngCore as _;
use sha2::Sha256;

/// Encrypts `payload` to one recipient and ASCII-armors it (64-column base64, trailing newline).
pub(crate) fn encrypt_armored(
    recipient: &dyn age::Recipient,
    payload: &[u8],
) -> Result<String, String> {
    let mut key_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut key_bytes);
    let file_key = FileKey::new(Box::new(key_bytes));
    zeroize::Zeroize::zeroize(&mut key_bytes);
    let (stanzas, _labels) = recipient
        .wrap_file_key(&file_key)
        .map_err(|e| e.to_string())?;
    let secret: &[u8; 16] = age::secrecy::ExposeSecret::expose_secret(&file_key);

    let mut header = String::from("age-encryption.org/v1\n");
    for stanza in &stanzas {
        header.push_str("-> ");
        header.push_str(&stanza.tag);
        for arg in &stanza.args {
            header.push(' ');
            header.push_str(arg);
        }
        header.push('\n');
        let body = STANDARD_NO_PAD.encode(&stanza.body);
        // Body lines are 64 columns; the last line is always shorter (possibly empty).
        let mut rest = body.as_str();
        loop {
            let (line, tail) = rest.split_at(rest.len().min(64));
            header.push_str(line);
            header.push('\n');
            rest = tail;
            if line.len() < 64 {
                break;
            }
        }
    }
    header.push_str("---");
    let mac_key = age_core::primitives::hkdf(&[], b"header", secret);
    let mut mac =
        <Hmac<Sha256> as hmac::Mac>::new_from_slice(&mac_key).map_err(|e| e.to_string())?;
    mac.update(header.as_bytes());
    header.push(' ');
    header.push_str(&STANDARD_NO_PAD.encode(mac.finalize().into_bytes()));
    header.push('\n');

    let mut nonce = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let payload_key = age_core::primitives::hkdf(&nonce, b"payload", secret);
    // One STREAM chunk: counter 0, last-chunk flag set.
    let mut chunk_nonce = [0u8; 12];
    chunk_nonce[11] = 1;
    let sealed = ChaCha20Poly1305::new((&payload_key).into())
        .encrypt((&chunk_nonce).into(), payload)
        .map_err(|e| e.to_string())?;

    let mut binary = header.into_bytes();
    binary.extend_from_slice(&nonce);
    binary.extend_from_slice(&sealed);
    let encoded = STANDARD.encode(&binary);
    let mut armored = String::from("-----BEGIN AGE ENCRYPTED FILE-----\n");
    for line in encoded.as_bytes().chunks(64) {
        armored.push_str(std::str::from_utf8(line).map_err(|e| e.to_string())?);
        armored.push('\n');
    }
    armored.push_str("-----END AGE ENCRYPTED FILE-----\n");
    Ok(armored)
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn our_age_files_decrypt_with_the_age_crate_and_have_go_age_shape() {
        let identity = age::x25519::Identity::generate();
        let recipient = identity.to_public();
        for payload in [vec![7u8; 32], vec![9u8; 33]] {
            let armored = encrypt_armored(&recipient, &payload).unwrap();
            let decryptor =
                age::Decryptor::new_buffered(age::armor::ArmoredReader::new(armored.as_bytes()))
                    .unwrap();
            let mut out = Vec::new();
            decryptor
                .decrypt(std::iter::once(&identity as &dyn age::Identity))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, payload);
            let lines: Vec<usize> = armored.lines().map(str::len).collect();
            // Go age: 232 bytes for a 32-byte key, 233 for a Shamir share: lines 64,64,64,64,56.
            assert_eq!(lines, vec![34, 64, 64, 64, 64, 56, 32], "{armored}");
            assert!(armored.contains("\nYWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOS"));
        }
    }
}

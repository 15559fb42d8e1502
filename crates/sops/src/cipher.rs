//! `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` values: AES-256-GCM with sops' 32-byte nonce.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::SopsError;

type SopsGcm = AesGcm<Aes256, U32>;

/// The prefix every sops-encrypted value starts with.
pub(crate) const ENC_PREFIX: &str = "ENC[AES256_GCM,";

/// One parsed `ENC[…]` value (still encrypted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EncValue {
    pub data: Vec<u8>,
    pub iv: Vec<u8>,
    pub tag: Vec<u8>,
    pub kind: String,
}

impl EncValue {
    /// Parses the sops text form; `None` when `text` is not an `ENC[…]` value.
    pub fn parse(text: &str) -> Option<Self> {
        let rest = text.strip_prefix(ENC_PREFIX)?;
        let rest = rest.strip_prefix("data:")?;
        let (data, rest) = rest.split_once(",iv:")?;
        let (iv, rest) = rest.split_once(",tag:")?;
        let (tag, rest) = rest.split_once(",type:")?;
        let kind = rest.strip_suffix(']')?;
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return None;
        }
        Some(Self {
            data: B64.decode(data).ok()?,
            iv: B64.decode(iv).ok()?,
            tag: B64.decode(tag).ok()?,
            kind: kind.to_owned(),
        })
    }

    /// The sops text form.
    pub fn to_text(&self) -> String {
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{}]",
            B64.encode(&self.data),
            B64.encode(&self.iv),
            B64.encode(&self.tag),
            self.kind
        )
    }

    /// Whether this is an encrypted comment (never part of the MAC).
    pub fn is_comment(&self) -> bool {
        self.kind == "comment"
    }

    /// Decrypts with `key` and `aad`; `None` when the tag does not verify.
    pub fn decrypt(&self, key: &[u8; 32], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if self.iv.len() != 32 || self.tag.len() != 16 {
            return None;
        }
        let cipher = SopsGcm::new(key.into());
        let mut buffer = Zeroizing::new(self.data.clone());
        cipher
            .decrypt_in_place_detached(
                aes_gcm::Nonce::<U32>::from_slice(&self.iv),
                aad,
                &mut buffer,
                aes_gcm::Tag::from_slice(&self.tag),
            )
            .ok()?;
        Some(buffer)
    }

    /// Encrypts `plaintext` with `key`, `aad` and the given 32-byte `iv`.
    pub fn encrypt(
        key: &[u8; 32],
        iv: &[u8],
        aad: &[u8],
        plaintext: &[u8],
        kind: &str,
    ) -> Result<Self, SopsError> {
        if iv.len() != 32 {
            return Err(SopsError::Malformed {
                what: format!("an encrypted value has a {}-byte IV, expected 32", iv.len()),
            });
        }
        let cipher = SopsGcm::new(key.into());
        let mut buffer = plaintext.to_vec();
        let tag = cipher
            .encrypt_in_place_detached(aes_gcm::Nonce::<U32>::from_slice(iv), aad, &mut buffer)
            .map_err(|_| SopsError::Malformed {
                what: "a value is too long to encrypt".into(),
            })?;
        Ok(Self {
            data: buffer,
            iv: iv.to_vec(),
            tag: tag.to_vec(),
            kind: kind.to_owned(),
        })
    }

    /// Encrypts with a fresh random IV.
    pub fn encrypt_fresh(
        key: &[u8; 32],
        aad: &[u8],
        plaintext: &[u8],
        kind: &str,
    ) -> Result<Self, SopsError> {
        let mut iv = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        Self::encrypt(key, &iv, aad, plaintext, kind)
    }
}

/// The AAD of a value at `path`: the keys joined with `:`, plus a final `:`.
pub(crate) fn aad_for(path: &[String]) -> String {
    let mut aad = path.join(":");
    aad.push(':');
    aad
}

/// Every `ENC[AES256_GCM,…]` token in `text`, as byte ranges, in order.
pub(crate) fn find_tokens(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = text[from..].find(ENC_PREFIX) {
        let start = from + found;
        let Some(close) = text[start..].find(']') else {
            break;
        };
        let end = start + close + 1;
        if EncValue::parse(&text[start..end]).is_some() {
            out.push(start..end);
        }
        from = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_then_decrypt_round_trips_and_checks_the_aad() {
        let key = [7u8; 32];
        let value = EncValue::encrypt_fresh(&key, b"a:b:", b"hello", "str").unwrap();
        let text = value.to_text();
        let parsed = EncValue::parse(&text).unwrap();
        assert_eq!(parsed, value);
        assert_eq!(parsed.decrypt(&key, b"a:b:").unwrap().as_slice(), b"hello");
        assert!(parsed.decrypt(&key, b"a:c:").is_none());
    }

    #[test]
    fn non_enc_text_is_not_a_token() {
        assert!(EncValue::parse("hello").is_none());
        assert!(EncValue::parse("ENC[AES256_GCM,data:!!,iv:,tag:,type:str]").is_none());
        assert!(find_tokens("x: ENC[AES256_GCM,data:").is_empty());
    }
}

//! Which values of a new file are encrypted: sops' crypt rules (`unencrypted_suffix`, …), one per
//! file, tested against every key of a value's path (`sops.go` `shouldBeEncrypted`).

use regex::Regex;

use crate::SopsError;

/// The suffix sops applies (and writes into the metadata) when a rule sets no crypt rule.
pub const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// The one crypt rule of a file: which values stay in plaintext.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncryptionRule {
    /// Values with a key ending in the suffix (anywhere on the path) stay plaintext; sops'
    /// default is `_unencrypted`.
    UnencryptedSuffix(String),
    /// Only values with a key ending in the suffix (anywhere on the path) are encrypted.
    EncryptedSuffix(String),
    /// Values with a key matching the (unanchored, RE2) regex stay plaintext.
    UnencryptedRegex(String),
    /// Only values with a key matching the (unanchored, RE2) regex are encrypted.
    EncryptedRegex(String),
}

impl Default for EncryptionRule {
    fn default() -> Self {
        Self::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.to_owned())
    }
}

impl EncryptionRule {
    /// The metadata key and value sops writes for this rule.
    pub(crate) fn metadata_entry(&self) -> (&'static str, &str) {
        match self {
            Self::UnencryptedSuffix(s) => ("unencrypted_suffix", s),
            Self::EncryptedSuffix(s) => ("encrypted_suffix", s),
            Self::UnencryptedRegex(r) => ("unencrypted_regex", r),
            Self::EncryptedRegex(r) => ("encrypted_regex", r),
        }
    }

    /// The rule stored in a file's metadata (`None` for the binary store, which has none).
    pub(crate) fn from_metadata(sops: &crate::Value) -> Option<Self> {
        let get = |key: &str| {
            sops.get(key)
                .and_then(crate::Value::as_str)
                .map(str::to_owned)
        };
        if let Some(s) = get("unencrypted_suffix") {
            return Some(Self::UnencryptedSuffix(s));
        }
        if let Some(s) = get("encrypted_suffix") {
            return Some(Self::EncryptedSuffix(s));
        }
        if let Some(r) = get("unencrypted_regex") {
            return Some(Self::UnencryptedRegex(r));
        }
        get("encrypted_regex").map(Self::EncryptedRegex)
    }

    /// A compiled form that answers "is the value at this path encrypted?".
    pub(crate) fn matcher(&self) -> Result<PathMatcher, SopsError> {
        let compile = |r: &str| {
            Regex::new(r).map_err(|e| SopsError::Unsupported {
                action: "use the creation rule's crypt regex".into(),
                reason: format!("`{r}` is not a valid regular expression: {e}"),
            })
        };
        Ok(match self {
            Self::UnencryptedSuffix(s) => PathMatcher::UnencryptedSuffix(s.clone()),
            Self::EncryptedSuffix(s) => PathMatcher::EncryptedSuffix(s.clone()),
            Self::UnencryptedRegex(r) => PathMatcher::UnencryptedRegex(compile(r)?),
            Self::EncryptedRegex(r) => PathMatcher::EncryptedRegex(compile(r)?),
        })
    }
}

/// [`EncryptionRule`] ready to test paths.
pub(crate) enum PathMatcher {
    UnencryptedSuffix(String),
    EncryptedSuffix(String),
    UnencryptedRegex(Regex),
    EncryptedRegex(Regex),
    /// The binary store: its one value is always encrypted.
    Everything,
}

impl PathMatcher {
    /// Whether the value at `path` (mapping keys from the root) is encrypted.
    pub(crate) fn encrypts(&self, path: &[String]) -> bool {
        match self {
            Self::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Self::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Self::UnencryptedRegex(r) => !path.iter().any(|k| r.is_match(k)),
            Self::EncryptedRegex(r) => path.iter().any(|k| r.is_match(k)),
            Self::Everything => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    #[test]
    fn every_key_of_the_path_is_tested_like_sops() {
        let suffix = EncryptionRule::default().matcher().unwrap();
        assert!(suffix.encrypts(&path(&["a", "b"])));
        assert!(!suffix.encrypts(&path(&["a_unencrypted", "b"])));
        let regex = EncryptionRule::EncryptedRegex("^(data|pw)$".into())
            .matcher()
            .unwrap();
        assert!(regex.encrypts(&path(&["data"])));
        assert!(regex.encrypts(&path(&["pw", "inner"])));
        assert!(!regex.encrypts(&path(&["other"])));
    }

    #[test]
    fn a_bad_regex_is_a_clear_error() {
        let err = EncryptionRule::EncryptedRegex("(".into())
            .matcher()
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a valid regular expression"));
    }
}

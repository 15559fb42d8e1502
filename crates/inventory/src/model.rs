//! The typed inventory and its validation. Values are parsed into types that are always valid
//! (a [`Fingerprint`] is a real SHA-256 fingerprint, a [`HostName`] is usable as a YAML anchor and a
//! path segment), so the rest of hostage never re-checks them.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};

use hostage_recipients::AgeRecipient;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;

/// Why an inventory cannot be used. Every variant says where.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The file is not a valid inventory.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        /// The inventory file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and what to do.
        message: String,
    },
    /// The file cannot be read.
    #[error("cannot read the inventory")]
    Io(#[source] std::io::Error),
}

/// The fleet, as described by the inventory file.
#[derive(Clone, Debug)]
pub struct Inventory {
    /// The inventory file itself.
    pub path: PathBuf,
    /// The directory holding `.sops.yaml` (resolved against the inventory's directory).
    pub secrets_repo: PathBuf,
    /// The operator's recipient, on every file.
    pub workstation: Option<Workstation>,
    /// The shared infrastructure key.
    pub infrastructure: Option<Infrastructure>,
    /// Hosts, in file order.
    pub hosts: Vec<Host>,
}

/// The operator's workstation recipient (the root of trust: on every file).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Workstation {
    /// The `age1…` recipient (converted from `~/.ssh/id_ed25519.pub`).
    #[serde(deserialize_with = "age_recipient")]
    pub recipient: AgeRecipient,
    /// The local identity that decrypts for it (age identity file or OpenSSH key).
    #[serde(default)]
    pub identity: Option<PathBuf>,
}

/// The shared infrastructure key: its recipient, where its private half comes from, where it goes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, try_from = "InfrastructureFields")]
pub struct Infrastructure {
    /// The `age1…` recipient of the key.
    pub recipient: AgeRecipient,
    /// Where hostage reads the private key when deploying it.
    pub private_key: PrivateKeySource,
    /// Absolute path of the key on infrastructure hosts.
    pub deploy_path: String,
}

/// Where the infrastructure private key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PrivateKeySource {
    /// A local OpenSSH key file, e.g. `~/.ssh/id_infrastructure`.
    File(PathBuf),
    /// A value in a sops file of the secrets repo, decrypted in memory.
    Sops {
        /// The sops file, relative to the secrets repo.
        file: PathBuf,
        /// The top-level key holding the private key text.
        key: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InfrastructureFields {
    #[serde(deserialize_with = "age_recipient")]
    recipient: AgeRecipient,
    #[serde(default)]
    private_key_file: Option<PathBuf>,
    #[serde(default)]
    private_key_sops: Option<PathBuf>,
    #[serde(default)]
    private_key_sops_key: Option<String>,
    #[serde(default = "default_deploy_path")]
    deploy_path: String,
}

impl TryFrom<InfrastructureFields> for Infrastructure {
    type Error = String;
    fn try_from(fields: InfrastructureFields) -> Result<Self, String> {
        let private_key = match (fields.private_key_file, fields.private_key_sops) {
            (Some(file), None) => PrivateKeySource::File(file),
            (None, Some(file)) => {
                if file.is_absolute() || escapes(&file) {
                    return Err("private_key_sops must be a path inside the secrets repo".into());
                }
                PrivateKeySource::Sops {
                    file,
                    key: fields
                        .private_key_sops_key
                        .unwrap_or_else(|| "id_infrastructure".to_owned()),
                }
            }
            (None, None) => {
                return Err("infrastructure needs private_key_file (a local key) or private_key_sops (a sops file in the repo)".into())
            }
            (Some(_), Some(_)) => {
                return Err("give private_key_file or private_key_sops, not both".into())
            }
        };
        if !fields.deploy_path.starts_with('/') {
            return Err(format!(
                "deploy_path `{}` must be an absolute path on the hosts",
                fields.deploy_path
            ));
        }
        Ok(Self {
            recipient: fields.recipient,
            private_key,
            deploy_path: fields.deploy_path,
        })
    }
}

/// One server.
#[derive(Clone, Debug)]
pub struct Host {
    /// Its name in the inventory (also its `.sops.yaml` anchor and `pubkeys/<name>.pub`).
    pub name: HostName,
    /// Address to connect to; `None` when `ssh_alias` names a `~/.ssh/config` entry instead.
    pub address: Option<String>,
    /// A `Host` entry of the operator's ssh config.
    pub ssh_alias: Option<String>,
    /// Login user (`sudo -n` is used where root is needed and this is not root).
    pub user: String,
    /// SSH port, when not the default.
    pub port: Option<u16>,
    /// Where the host's public ed25519 key lives on the host.
    pub host_key_path: String,
    /// Whether the host gets its own recipient (its converted host key).
    pub per_host_recipient: bool,
    /// Whether the host receives the shared infrastructure key.
    pub infrastructure_key: bool,
    /// Whether a rule onboarding creates for this host's secrets keeps the infrastructure
    /// recipient of the rule it is copied from. The seed layout keeps it (server secrets stay
    /// readable with workstation + infrastructure, the host's own key is added); `false` gives a
    /// host's new rules to the other recipients and the host alone.
    pub keep_infrastructure: bool,
    /// Secret paths (path regexes relative to the repo) this host must be able to read.
    pub secrets: Vec<SecretPath>,
    /// Where the sops-encrypted backup of the host's private key is kept, relative to the
    /// secrets repo (`None`: what the repo already uses, else the seed's
    /// `secrets/host/<host>/ssh_host_ed25519_key.sops`).
    pub backup_path: Option<RepoPath>,
    /// The verified host key, as recorded by hostage.
    pub pin: Option<Pin>,
}

impl Host {
    /// What to hand to ssh: the alias, or the address.
    pub fn ssh_destination(&self) -> &str {
        self.ssh_alias
            .as_deref()
            .or(self.address.as_deref())
            .expect("validation guarantees an address or an alias")
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HostFields {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    ssh_alias: Option<String>,
    #[serde(default = "default_user")]
    user: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default = "default_host_key_path")]
    host_key_path: String,
    #[serde(default = "yes")]
    per_host_recipient: bool,
    #[serde(default)]
    infrastructure_key: bool,
    #[serde(default = "yes")]
    keep_infrastructure: bool,
    #[serde(default)]
    secrets: Vec<SecretPath>,
    #[serde(default)]
    backup_path: Option<RepoPath>,
    #[serde(default)]
    pin: Option<Pin>,
}

/// A host-key pin written by hostage after verification.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// The host key's fingerprint.
    pub fingerprint: Fingerprint,
    /// The age recipient converted from it.
    #[serde(deserialize_with = "age_recipient")]
    pub recipient: AgeRecipient,
    /// When it was verified (RFC 3339).
    pub verified: String,
}

/// A host name usable as a YAML anchor, a path segment and a file name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct HostName(String);

impl HostName {
    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HostName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if valid {
            Ok(Self(name))
        } else {
            Err(format!(
                "host name `{name}` must be 1-63 letters, digits, `-` or `_`, starting with a letter or digit (it becomes a YAML anchor and a directory name)"
            ))
        }
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub use hostage_recipients::Fingerprint;

/// A secret path: a path regex (as in `.sops.yaml` `path_regex`) relative to the secrets repo.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct SecretPath(String);

impl SecretPath {
    /// The regex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SecretPath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        if let Err(e) = regex::Regex::new(&text) {
            return Err(format!("secret path `{text}` is not a valid regex: {e}"));
        }
        let literal = text.trim_start_matches('^');
        if literal.starts_with('/') || literal.split('/').any(|segment| segment == "..") {
            return Err(format!(
                "secret path `{text}` points outside the secrets repo; paths are relative to it, like `secrets/hosts/gnomeregan/.*`"
            ));
        }
        Ok(Self(text))
    }
}

/// A file path relative to the secrets repo that stays inside it (no leading `/`, no `..`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RepoPath(String);

impl RepoPath {
    /// The path text, relative to the secrets repo.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RepoPath {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let outside = text.starts_with('/')
            || text.split('/').any(|segment| segment == "..")
            || text
                .split('/')
                .all(|segment| segment.is_empty() || segment == ".");
        if outside || text.chars().any(char::is_control) {
            return Err(format!(
                "path `{text}` is not a file inside the secrets repo; give it relative to the repo, like `secrets/host/gnomeregan/ssh_host_ed25519_key.sops`"
            ));
        }
        Ok(Self(text))
    }
}

/// The hosts mapping, in file order, keeping duplicate names (a map would silently keep the last)
/// so validation can refuse them where they stand.
struct HostEntries(Vec<(HostName, HostFields)>);

impl<'de> Deserialize<'de> for HostEntries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;
        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = HostEntries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping of host names to host settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<HostEntries, A::Error> {
                let mut entries: Vec<(HostName, HostFields)> = Vec::new();
                while let Some(name) = map.next_key::<HostName>()? {
                    let fields = map.next_value::<HostFields>()?;
                    entries.push((name, fields));
                }
                Ok(HostEntries(entries))
            }
            fn visit_unit<E: de::Error>(self) -> Result<HostEntries, E> {
                Ok(HostEntries(Vec::new()))
            }
        }
        deserializer.deserialize_map(EntriesVisitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InventoryFields {
    secrets_repo: PathBuf,
    #[serde(default)]
    recipients: RecipientsFields,
    hosts: HostEntries,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientsFields {
    #[serde(default)]
    workstation: Option<Workstation>,
    #[serde(default)]
    infrastructure: Option<Infrastructure>,
}

impl Inventory {
    /// Reads and validates the inventory at `path`.
    pub fn load(path: &Path) -> Result<Self, InventoryError> {
        let text = fs_err::read_to_string(path).map_err(InventoryError::Io)?;
        Self::parse(path, &text)
    }

    /// Validates inventory `text` as if read from `path` (relative paths resolve against its
    /// directory).
    pub fn parse(path: &Path, text: &str) -> Result<Self, InventoryError> {
        let fields: InventoryFields =
            yaml_serde::from_str(text).map_err(|e| yaml_error(path, &e))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let secrets_repo = base.join(&fields.secrets_repo);
        let invalid = |needle: &str, message: String| {
            let (line, column) = locate(text, needle);
            InventoryError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message,
            }
        };
        if !secrets_repo.is_dir() {
            return Err(invalid(
                "secrets_repo:",
                format!(
                    "secrets_repo `{}` is not a directory (it is resolved against the inventory's directory)",
                    fields.secrets_repo.display()
                ),
            ));
        }
        let mut hosts = Vec::with_capacity(fields.hosts.0.len());
        let mut pinned = BTreeSet::new();
        for (index, (name, host)) in fields.hosts.0.into_iter().enumerate() {
            let needle = format!("{name}:");
            if hosts.iter().any(|h: &Host| h.name == name) {
                let (line, column) = locate_nth(text, &needle, 2);
                return Err(InventoryError::Invalid {
                    path: path.to_owned(),
                    line,
                    column,
                    message: format!(
                        "host `{name}` is listed twice (entry {}); merge the two entries",
                        index + 1
                    ),
                });
            }
            match (&host.address, &host.ssh_alias) {
                (None, None) => {
                    return Err(invalid(
                        &needle,
                        format!("host `{name}` needs `address` (or `ssh_alias` naming an entry of your ssh config)"),
                    ))
                }
                (Some(_), Some(_)) => {
                    return Err(invalid(
                        &needle,
                        format!("host `{name}` has both `address` and `ssh_alias`; keep one"),
                    ))
                }
                _ => {}
            }
            // These reach ssh's command line and the `Match originalhost "…"` line of the config
            // hostage writes: a quote or a newline would add directives.
            for (field, value) in [
                ("address", host.address.as_deref()),
                ("ssh_alias", host.ssh_alias.as_deref()),
                ("user", Some(host.user.as_str())),
            ] {
                let problem = value.and_then(|v| {
                    ssh_word_problem(v).or_else(|| {
                        (field != "user" && v.contains('@'))
                            .then_some("contains `@` (give the login in `user:`)")
                    })
                });
                if let Some(problem) = problem {
                    let (line, column) = locate_field_of(text, &needle, field);
                    return Err(InventoryError::Invalid {
                        path: path.to_owned(),
                        line,
                        column,
                        message: format!(
                            "host `{name}`: {field} {:?} {problem}; write it as ssh takes it on the command line (`{field}: web01.example.org`)",
                            value.unwrap_or_default()
                        ),
                    });
                }
            }
            if !host.host_key_path.starts_with('/') {
                return Err(invalid(
                    &needle,
                    format!("host `{name}`: host_key_path must be absolute on the host"),
                ));
            }
            if let Some(pin) = &host.pin {
                if !pinned.insert(pin.fingerprint.clone()) {
                    return Err(invalid(
                        &needle,
                        format!(
                            "host `{name}` is pinned to {}, which another host already has: hosts cloned from one image share host keys; regenerate this host's key (`rm /etc/ssh/ssh_host_*; ssh-keygen -A`) and run `hostage rotate {name}`",
                            pin.fingerprint
                        ),
                    ));
                }
            }
            hosts.push(Host {
                name,
                address: host.address,
                ssh_alias: host.ssh_alias,
                user: host.user,
                port: host.port,
                host_key_path: host.host_key_path,
                per_host_recipient: host.per_host_recipient,
                infrastructure_key: host.infrastructure_key,
                keep_infrastructure: host.keep_infrastructure,
                secrets: host.secrets,
                backup_path: host.backup_path,
                pin: host.pin,
            });
        }
        if hosts.iter().any(|h| h.infrastructure_key) && fields.recipients.infrastructure.is_none()
        {
            return Err(invalid(
                "hosts:",
                "some hosts have `infrastructure_key: true` but `recipients.infrastructure` is not defined".to_owned(),
            ));
        }
        Ok(Self {
            path: path.to_owned(),
            secrets_repo,
            workstation: fields.recipients.workstation,
            infrastructure: fields.recipients.infrastructure,
            hosts,
        })
    }

    /// Every recipient the inventory accounts for, with whose it is: the workstation's, the
    /// infrastructure key's and each pinned host's (by the host's name).
    pub fn recipients(&self) -> Vec<(&str, &AgeRecipient)> {
        self.workstation
            .iter()
            .map(|w| ("workstation", &w.recipient))
            .chain(
                self.infrastructure
                    .iter()
                    .map(|i| ("infrastructure", &i.recipient)),
            )
            .chain(
                self.hosts
                    .iter()
                    .filter_map(|h| h.pin.as_ref().map(|p| (h.name.as_str(), &p.recipient))),
            )
            .collect()
    }

    /// The host called `name`, if any.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|h| h.name.as_str() == name)
    }
}

fn yaml_error(path: &Path, error: &yaml_serde::Error) -> InventoryError {
    let (line, column) = error
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((1, 1));
    let mut message = error.to_string();
    // yaml_serde appends " at line L column C"; we print the location up front instead.
    if let Some(index) = message.rfind(" at line ") {
        message.truncate(index);
    }
    InventoryError::Invalid {
        path: path.to_owned(),
        line,
        column,
        message,
    }
}

/// The 1-based line and column of the first line whose content starts with `needle`.
fn locate(text: &str, needle: &str) -> (usize, usize) {
    locate_nth(text, needle, 1)
}

/// Like [`locate`], for the `nth` (1-based) such line; the start of the file if there is none.
fn locate_nth(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let trimmed = line.trim_start();
            trimmed
                .starts_with(needle)
                .then(|| (index + 1, line.len() - trimmed.len() + 1))
        })
        .nth(nth.saturating_sub(1))
        .unwrap_or((1, 1))
}

/// Why `value` cannot be handed to ssh as a host, alias or user, if it cannot: the rule of the
/// command line's host parser (`hostage_remote::HostSpec::parse`), kept in step with it.
fn ssh_word_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("is empty")
    } else if value.starts_with('-') {
        Some("starts with `-` (ssh would read it as an option)")
    } else if value.chars().any(|c| c.is_control()) {
        Some("contains a newline or another control character")
    } else if value.chars().any(char::is_whitespace) {
        Some("contains whitespace")
    } else if value.chars().any(|c| "'\"%\\*?!,".contains(c)) {
        Some("contains a quote, `%`, `\\` or a pattern character (`*?!,`)")
    } else {
        None
    }
}

/// Where `field:` of the host entry starting at `host_needle` is (that entry's line if absent).
fn locate_field_of(text: &str, host_needle: &str, field: &str) -> (usize, usize) {
    let (host_line, host_column) = locate(text, host_needle);
    let field_needle = format!("{field}:");
    text.lines()
        .enumerate()
        .skip(host_line)
        .take_while(|(_, line)| {
            let indent = line.len() - line.trim_start().len();
            line.trim().is_empty() || indent + 1 > host_column
        })
        .find_map(|(index, line)| {
            let trimmed = line.trim_start();
            trimmed
                .starts_with(&field_needle)
                .then(|| (index + 1, line.len() - trimmed.len() + 1))
        })
        .unwrap_or((host_line, host_column))
}

fn escapes(path: &Path) -> bool {
    path.components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
}

fn age_recipient<'de, D: Deserializer<'de>>(deserializer: D) -> Result<AgeRecipient, D::Error> {
    let text = String::deserialize(deserializer)?;
    AgeRecipient::parse(&text).map_err(de::Error::custom)
}

fn default_deploy_path() -> String {
    "/root/id_infrastructure".to_owned()
}

fn default_user() -> String {
    "root".to_owned()
}

fn default_host_key_path() -> String {
    "/etc/ssh/ssh_host_ed25519_key.pub".to_owned()
}

fn yes() -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKSTATION: &str = "age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452";

    fn parse(text: &str) -> Result<Inventory, InventoryError> {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir(dir.path().join("secrets")).unwrap();
        Inventory::parse(&dir.path().join("fleet.yaml"), text)
    }

    fn error(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn host_values_that_would_add_ssh_directives_are_refused_naming_their_line() {
        let cases = [
            (
                "    address: \"10.0.0.7\\\"\\n  ProxyCommand sh -c x\"\n",
                "address",
                "newline",
            ),
            ("    address: '10.0.0.7\"'\n", "address", "quote"),
            ("    address: -oProxyCommand=x\n", "address", "`-`"),
            ("    ssh_alias: \"web 01\"\n", "ssh_alias", "whitespace"),
            (
                "    address: 10.0.0.7\n    user: \"root\\tx\"\n",
                "user",
                "control",
            ),
            ("    address: root@10.0.0.7\n", "address", "`@`"),
            ("    address: 'web*'\n", "address", "pattern"),
        ];
        for (entry, field, why) in cases {
            let text = fleet(&format!(
                "  ok:\n    address: 10.0.0.1\n  gnomeregan:\n{entry}"
            ));
            let message = error(&text);
            let line = text
                .lines()
                .position(|l| {
                    l.trim_start().starts_with(&format!("{field}:")) && !l.contains("10.0.0.1")
                })
                .unwrap()
                + 1;
            assert!(
                message.contains(&format!("/fleet.yaml:{line}:5: host `gnomeregan`: {field}")),
                "{entry}: {message}"
            );
            assert!(message.contains(why), "{entry}: {message}");
        }
        // What hosts really look like still parses.
        parse(&fleet(
            "  a:\n    address: fe80::1\n    user: deploy@corp\n  b:\n    ssh_alias: b.example.org\n    user: nix_deploy\n",
        ))
        .unwrap();
    }

    fn fleet(hosts: &str) -> String {
        format!(
            "secrets_repo: secrets\nrecipients:\n  workstation:\n    recipient: {WORKSTATION}\n  infrastructure:\n    recipient: {WORKSTATION}\n    private_key_file: ~/.ssh/id_infrastructure\nhosts:\n{hosts}"
        )
    }

    #[test]
    fn a_valid_fleet_parses_with_defaults() {
        let inventory = parse(&fleet(
            "  gnomeregan:\n    address: 10.0.0.7\n    secrets: ['secrets/hosts/gnomeregan/.*']\n  ironforge:\n    ssh_alias: ironforge\n    per_host_recipient: false\n    infrastructure_key: true\n",
        ))
        .unwrap();
        let names: Vec<_> = inventory.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["gnomeregan", "ironforge"]);
        let gnomeregan = inventory.host("gnomeregan").unwrap();
        assert_eq!(gnomeregan.user, "root");
        assert_eq!(
            gnomeregan.host_key_path,
            "/etc/ssh/ssh_host_ed25519_key.pub"
        );
        assert!(gnomeregan.per_host_recipient);
        assert!(gnomeregan.keep_infrastructure, "the seed layout's default");
        assert_eq!(gnomeregan.backup_path, None);
        assert_eq!(
            inventory.host("ironforge").unwrap().ssh_destination(),
            "ironforge"
        );
        assert_eq!(
            inventory.infrastructure.unwrap().deploy_path,
            "/root/id_infrastructure"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_file_line_and_the_valid_names() {
        let text = fleet("  gnomeregan:\n    adress: 10.0.0.7\n");
        let message = error(&text);
        assert!(message.contains("fleet.yaml:10:"), "{message}");
        assert!(message.contains("unknown field `adress`"), "{message}");
        assert!(message.contains("address"), "{message}");
    }

    #[test]
    fn a_backup_path_outside_the_secrets_repo_is_refused_with_the_line() {
        for path in ["/etc/shadow", "secrets/../../x", "..", "./"] {
            let message = error(&fleet(&format!(
                "  gnomeregan:\n    address: 10.0.0.7\n    backup_path: '{path}'\n"
            )));
            assert!(message.contains("fleet.yaml:"), "{path}: {message}");
            assert!(
                message.contains("inside the secrets repo"),
                "{path}: {message}"
            );
        }
        let inventory = parse(&fleet(
            "  gnomeregan:\n    address: 10.0.0.7\n    backup_path: keys/gnomeregan.sops\n",
        ))
        .unwrap();
        let host = inventory.host("gnomeregan").unwrap();
        assert_eq!(
            host.backup_path.as_ref().map(|p| p.as_str()),
            Some("keys/gnomeregan.sops")
        );
    }

    #[test]
    fn duplicate_hosts_are_refused() {
        let message = error(&fleet(
            "  gnomeregan:\n    address: a\n  gnomeregan:\n    address: b\n",
        ));
        assert!(message.contains("listed twice"), "{message}");
        assert!(message.contains("fleet.yaml:11:"), "{message}");
    }

    #[test]
    fn bad_fingerprints_and_recipients_are_refused_where_they_stand() {
        let message = error(&fleet(
            "  gnomeregan:\n    address: a\n    pin:\n      fingerprint: MD5:aa:bb\n      recipient: age1x\n      verified: now\n",
        ));
        assert!(message.contains("fleet.yaml:12:"), "{message}");
        assert!(
            message.contains("not an OpenSSH SHA256 fingerprint"),
            "{message}"
        );
        let ssh = error(&fleet(
            "  gnomeregan:\n    address: a\n    pin:\n      fingerprint: SHA256:wEPu5zkkhaJZhOM5BFhVJnRbJC7OEuRKz/lt2XCrN8I\n      recipient: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOHz+U0YtjINc54dZiJNclfmEFifF7RXCFlNlTbuZBji\n      verified: now\n"
        ));
        assert!(ssh.contains("do not interoperate"), "{ssh}");
    }

    #[test]
    fn secret_paths_outside_the_repo_are_refused() {
        for path in ["/etc/secrets/.*", "^/etc/.*", "secrets/../../x"] {
            let message = error(&fleet(&format!(
                "  gnomeregan:\n    address: a\n    secrets: ['{path}']\n"
            )));
            assert!(
                message.contains("outside the secrets repo"),
                "{path}: {message}"
            );
        }
    }

    #[test]
    fn a_host_needs_exactly_one_way_to_reach_it() {
        assert!(error(&fleet("  gnomeregan:\n    user: root\n")).contains("needs `address`"));
        let both = error(&fleet("  gnomeregan:\n    address: a\n    ssh_alias: b\n"));
        assert!(both.contains("fleet.yaml:9:3"), "{both}");
    }

    #[test]
    fn two_hosts_pinned_to_one_key_are_refused_as_clones() {
        let pin = "    pin:\n      fingerprint: SHA256:wEPu5zkkhaJZhOM5BFhVJnRbJC7OEuRKz/lt2XCrN8I\n      recipient: age17044m9wgakla6pzftf4srtl3h5mcsr85jysgt5fg23zpnta8sfdqhzn452\n      verified: 2026-11-24T21:00:00Z\n";
        let message = error(&fleet(&format!(
            "  a:\n    address: a\n{pin}  b:\n    address: b\n{pin}"
        )));
        assert!(message.contains("cloned from one image"), "{message}");
    }

    #[test]
    fn a_missing_secrets_repo_is_named() {
        let message = error("secrets_repo: nowhere\nhosts: {}\n");
        assert!(
            message.contains("fleet.yaml:1:1: secrets_repo `nowhere`"),
            "{message}"
        );
    }

    #[test]
    fn infrastructure_hosts_need_an_infrastructure_key() {
        let message = error(
            "secrets_repo: secrets\nhosts:\n  a:\n    address: a\n    infrastructure_key: true\n",
        );
        assert!(message.contains("recipients.infrastructure"), "{message}");
    }
}

#[cfg(test)]
mod shipped {
    use super::*;

    #[test]
    fn the_example_fleet_in_inventory_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../inventory/fleet.yaml");
        let inventory = Inventory::load(&path).unwrap();
        assert_eq!(inventory.hosts.len(), 2);
        assert!(inventory.secrets_repo.join(".sops.yaml").is_file());
        let gnomeregan = inventory.host("gnomeregan").unwrap();
        assert_eq!(
            gnomeregan.pin.as_ref().unwrap().fingerprint.as_str(),
            "SHA256:wEPu5zkkhaJZhOM5BFhVJnRbJC7OEuRKz/lt2XCrN8I"
        );
    }
}

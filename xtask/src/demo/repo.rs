//! The demo's secrets repo, in the reference operator's layout (`docs/rules.md`, "The seed
//! layout"): a `# SOPS configuration file` header naming the keys with aligned
//! `# name:  age1…` labels, flat comma `age:` strings in the order workstation,infrastructure,<host>,
//! a last `secrets/.*` catch-all to the workstation only; files under `secrets/host/<host>/` and
//! `secrets/workstation/`, mostly `*.sops.yaml` and some `*.sops` files that are YAML inside (made by
//! the real sops with `--input-type yaml --output-type yaml`, as the operator does by hand, the
//! plaintext on its stdin);
//! `pubkeys/<name>.pub` and the name → path map `secrets/default.nix`.

use std::path::Path;

use anyhow::Context as _;

/// One demo host: its inventory entry.
pub struct DemoHost {
    pub name: &'static str,
    pub per_host_recipient: bool,
    pub infrastructure_key: bool,
    /// The `secrets:` path regexes of the inventory.
    pub secrets: &'static [&'static str],
}

/// The fleet. `gnomeregan` has no rule before onboarding: onboarding adds
/// `secrets/host/gnomeregan/.*` above `secrets/.*`, a copy of that catch-all's keys (the workstation)
/// plus the host, and, as in the seed, a rule for ironforge's `*-storage.sops.yaml` files above
/// ironforge's rule (workstation, infrastructure, gnomeregan). `stormwind` already has a rule,
/// encrypted to workstation + infrastructure, that onboarding appends it to; `ironforge` reads
/// through the infrastructure key only. Every host keeps the inventory defaults
/// (`keep_infrastructure: true`, the seed's way: a rule onboarding copies keeps the
/// infrastructure recipient the copied rule has).
pub const HOSTS: &[DemoHost] = &[
    DemoHost {
        name: "gnomeregan",
        per_host_recipient: true,
        infrastructure_key: false,
        secrets: &[
            "secrets/host/gnomeregan/.*",
            "secrets/host/ironforge/.*-storage\\.sops\\.yaml",
        ],
    },
    DemoHost {
        name: "ironforge",
        per_host_recipient: false,
        infrastructure_key: true,
        secrets: &["secrets/host/ironforge/.*"],
    },
    DemoHost {
        name: "stormwind",
        per_host_recipient: true,
        infrastructure_key: true,
        secrets: &["secrets/host/stormwind/.*"],
    },
];

/// One secret file and the hosts meant to read it once every host is onboarded (the workstation
/// reads all). The infrastructure hosts (ironforge, stormwind) read the files of the rules that
/// hold the infrastructure recipient; gnomeregan's own files are for it alone.
pub struct DemoFile {
    pub path: &'static str,
    pub readers: &'static [&'static str],
}

const GNOMEREGAN: &[&str] = &["gnomeregan"];
const ALL: &[&str] = &["gnomeregan", "ironforge", "stormwind"];
const INFRASTRUCTURE: &[&str] = &["ironforge", "stormwind"];

pub const FILES: &[DemoFile] = &[
    DemoFile {
        path: "secrets/workstation/notes.sops.yaml",
        readers: &[],
    },
    DemoFile {
        path: "secrets/workstation/tokens.sops",
        readers: &[],
    },
    DemoFile {
        path: "secrets/host/gnomeregan/wifi.sops.yaml",
        readers: GNOMEREGAN,
    },
    DemoFile {
        path: "secrets/host/gnomeregan/db.sops.yaml",
        readers: GNOMEREGAN,
    },
    DemoFile {
        path: "secrets/host/gnomeregan/tls.sops",
        readers: GNOMEREGAN,
    },
    DemoFile {
        path: "secrets/host/ironforge/smtp.sops.yaml",
        readers: INFRASTRUCTURE,
    },
    DemoFile {
        path: "secrets/host/ironforge/ntp.sops",
        readers: INFRASTRUCTURE,
    },
    DemoFile {
        path: "secrets/host/ironforge/backup-storage.sops.yaml",
        readers: ALL,
    },
    DemoFile {
        path: "secrets/host/stormwind/db.sops.yaml",
        readers: INFRASTRUCTURE,
    },
    DemoFile {
        path: "secrets/host/stormwind/registry.sops",
        readers: INFRASTRUCTURE,
    },
];

impl DemoFile {
    /// Whether `host` should decrypt this file once `offboarded` (if any) is gone: an offboarded
    /// host reads nothing (its own directory falls to the workstation-only `secrets/.*` when its
    /// rule goes); other rules it was on (ironforge's storage rule) keep their other recipients.
    pub fn readable_by(&self, host: &str, offboarded: Option<&str>) -> bool {
        match offboarded {
            Some(gone) if host == gone => false,
            Some(gone) if self.path.starts_with(&format!("secrets/host/{gone}/")) => false,
            _ => self.readers.contains(&host),
        }
    }

    /// The plaintext sops encrypts. The `*.sops` files hold YAML too (the seed's way).
    pub fn plaintext(&self) -> &'static str {
        if self.path.ends_with(".sops.yaml") {
            "password: correct-horse\nnested:\n    token: t0k3n\n"
        } else {
            "data: |\n    -----BEGIN DEMO-----\n    an opaque secret\n    -----END DEMO-----\n"
        }
    }

    /// A value of the plaintext that must come back out of a decryption.
    pub fn secret(&self) -> &'static str {
        if self.path.ends_with(".sops.yaml") {
            "correct-horse"
        } else {
            "an opaque secret"
        }
    }
}

/// The recipients the repo starts with, and their OpenSSH public key lines (`pubkeys/`).
pub struct StartingKeys<'a> {
    pub workstation: &'a str,
    pub workstation_pub: &'a str,
    pub infrastructure: &'a str,
    pub infrastructure_pub: &'a str,
}

/// `.sops.yaml` before onboarding: the header labels, ironforge's and stormwind's rules
/// (workstation + infrastructure) and the catch-all.
pub fn sops_yaml(keys: &StartingKeys<'_>) -> String {
    let (ws, infra) = (keys.workstation, keys.infrastructure);
    format!(
        "# SOPS configuration file\n\
         #\n\
         # Public AGE keys:\n\
         # workstation:    {ws}\n\
         # infrastructure: {infra}\n\
         creation_rules:\n\
         \x20 - path_regex: secrets/host/ironforge/.*\n\
         \x20   age: {ws},{infra}\n\
         \x20 - path_regex: secrets/host/stormwind/.*\n\
         \x20   age: {ws},{infra}\n\
         \x20 - path_regex: secrets/.*\n\
         \x20   age: {ws}\n"
    )
}

/// `secrets/default.nix`: the names the fleet flake reads as `config.secrets.host.<host>.<name>`.
fn default_nix() -> String {
    let mut text = String::from(
        "# Secret name -> file, read by the fleet flake as config.secrets.host.<host>.<name>.\n{\n",
    );
    let mut groups: Vec<(&str, Vec<&DemoFile>)> = Vec::new();
    for file in FILES {
        let group = file
            .path
            .strip_prefix("secrets/")
            .and_then(|p| p.rsplit_once('/'))
            .map_or("", |(dir, _)| dir);
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, files)) => files.push(file),
            None => groups.push((group, vec![file])),
        }
    }
    for (group, files) in groups {
        let attribute = group.replace('/', ".");
        text.push_str(&format!("  {attribute} = {{\n"));
        for file in files {
            let relative = file.path.strip_prefix("secrets/").unwrap_or(file.path);
            let name = relative
                .rsplit('/')
                .next()
                .and_then(|n| n.split('.').next())
                .unwrap_or(relative);
            text.push_str(&format!("    {name} = ./{relative};\n"));
        }
        text.push_str("  };\n");
    }
    text.push_str("}\n");
    text
}

/// Writes the repo and encrypts every file with the real sops under the rules above.
pub fn create(repo: &Path, sops: &Path, keys: &StartingKeys<'_>) -> anyhow::Result<()> {
    fs_err::create_dir_all(repo.join("pubkeys"))?;
    fs_err::write(repo.join(".sops.yaml"), sops_yaml(keys))?;
    fs_err::write(
        repo.join("pubkeys/workstation.pub"),
        format!("{}\n", keys.workstation_pub),
    )?;
    fs_err::write(
        repo.join("pubkeys/infrastructure.pub"),
        format!("{}\n", keys.infrastructure_pub),
    )?;
    for file in FILES {
        let path = repo.join(file.path);
        fs_err::create_dir_all(path.parent().context("a file has a directory")?)?;
        // The plaintext goes in on stdin and never touches the disk; `*.sops` files need the
        // type flags (sops would guess JSON and fail), which are right for `*.sops.yaml` too.
        let encrypted = duct::cmd(
            sops,
            [
                "encrypt",
                "--filename-override",
                file.path,
                "--input-type",
                "yaml",
                "--output-type",
                "yaml",
                "/dev/stdin",
            ],
        )
        .dir(repo)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY_CMD")
        .stdin_bytes(file.plaintext())
        .stdout_capture()
        .run()
        .with_context(|| format!("sops encrypt {}", file.path))?;
        fs_err::write(&path, encrypted.stdout)?;
        println!("    {}", file.path);
    }
    fs_err::write(repo.join("secrets/default.nix"), default_nix())?;
    println!("    secrets/default.nix, pubkeys/workstation.pub, pubkeys/infrastructure.pub");
    Ok(())
}

/// What in `.sops.yaml` strays from the seed layout, given the header labels it should have in
/// order: labels missing, extra or duplicated, keys not in one column, a label whose recipient no
/// rule uses (left behind by a replace or a removal), anchors or a `keys:` list, a rule whose flat
/// `age:` string does not start workstation,infrastructure, a catch-all other than a last
/// `secrets/.*`.
pub fn seed_layout_problems(text: &str, labels: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let header: Vec<(&str, usize, &str)> = text
        .lines()
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("# ")?.split_once(':')?;
            let key = rest.trim_start();
            key.starts_with("age1")
                .then(|| (name, line.len() - key.len(), key))
        })
        .collect();
    let names: Vec<&str> = header.iter().map(|(name, _, _)| *name).collect();
    if names != labels {
        problems.push(format!("header labels {names:?}, expected {labels:?}"));
    }
    if header.windows(2).any(|pair| pair[0].1 != pair[1].1) {
        problems.push("the header labels' keys are not aligned in one column".into());
    }
    let ages: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("age: "))
        .collect();
    for (name, _, key) in &header {
        if !ages.iter().any(|age| age.split(',').any(|r| r == *key)) {
            problems.push(format!(
                "header label {name} names a recipient no rule uses"
            ));
        }
    }
    let anchored = |line: &str| {
        let item = line.trim_start();
        item.starts_with("- &") || item.starts_with("- *")
    };
    if text
        .lines()
        .any(|line| line.starts_with("keys:") || anchored(line))
    {
        problems.push("anchors or a keys: list (the seed has neither)".into());
    }
    let label = |name: &str| {
        header
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, _, key)| *key)
    };
    if let (Some(workstation), Some(infrastructure)) =
        (label("workstation"), label("infrastructure"))
    {
        for age in &ages {
            let recipients: Vec<&str> = age.split(',').collect();
            let in_order = recipients.first() == Some(&workstation)
                && (!recipients.contains(&infrastructure)
                    || recipients.get(1) == Some(&infrastructure));
            if !in_order {
                problems.push(format!(
                    "age: {age} is not in the order workstation,infrastructure,<host>"
                ));
            }
        }
        if ages.last() != Some(&workstation) {
            problems.push("the last rule is not to the workstation alone".into());
        }
    }
    let last_rule = text
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("- path_regex: "))
        .next_back();
    if last_rule != Some("secrets/.*") {
        problems.push(format!("the last rule is {last_rule:?}, not secrets/.*"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "age1workstation";
    const INFRA: &str = "age1infrastructure";

    fn starting() -> String {
        sops_yaml(&StartingKeys {
            workstation: WS,
            workstation_pub: "ssh-ed25519 AAAA ws",
            infrastructure: INFRA,
            infrastructure_pub: "ssh-ed25519 AAAA infra",
        })
    }

    #[test]
    fn the_starting_sops_yaml_is_in_the_seed_layout() {
        assert_eq!(
            seed_layout_problems(&starting(), &["workstation", "infrastructure"]),
            Vec::<String>::new()
        );
    }

    #[test]
    fn the_layout_check_sees_a_misaligned_stale_or_missing_label_and_a_wrong_order() {
        let text = starting().replace(
            "# infrastructure: age1infrastructure\n",
            "# infrastructure: age1infrastructure\n# gnomeregan: age1gone\n",
        );
        let problems = seed_layout_problems(&text, &["workstation", "infrastructure", "stormwind"]);
        assert!(
            problems.iter().any(|p| p.contains("header labels")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("not aligned")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("gnomeregan names a recipient no rule uses")),
            "{problems:?}"
        );

        let swapped =
            starting().replace(&format!("age: {WS},{INFRA}"), &format!("age: {INFRA},{WS}"));
        let problems = seed_layout_problems(&swapped, &["workstation", "infrastructure"]);
        assert!(
            problems.iter().any(|p| p.contains("not in the order")),
            "{problems:?}"
        );
    }

    #[test]
    fn an_offboarded_host_reads_nothing_and_its_own_directory_falls_to_the_workstation() {
        let own = &FILES[2];
        let storage = FILES
            .iter()
            .find(|f| f.path.ends_with("-storage.sops.yaml"))
            .expect("the demo has a storage file");
        assert!(own.readable_by("gnomeregan", None));
        assert!(!own.readable_by("gnomeregan", Some("gnomeregan")));
        assert!(storage.readable_by("ironforge", Some("gnomeregan")));
        assert!(!storage.readable_by("gnomeregan", Some("gnomeregan")));
    }

    #[test]
    fn default_nix_maps_every_demo_file_once() {
        let text = default_nix();
        for file in FILES {
            let relative = file.path.strip_prefix("secrets/").expect("under secrets/");
            assert_eq!(text.matches(&format!("./{relative};")).count(), 1, "{text}");
        }
    }
}

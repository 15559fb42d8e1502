//! `cargo xtask demo`: the main job on a throwaway fleet. Three loopback sshd hosts (from the
//! test harness), a secrets repo in the seed's style with a dozen files made by the real sops,
//! `hostage onboard` for every host (twice: the second is a no-op), `hostage rotate` for a rebuilt
//! host, `hostage rotate-infra`, `hostage status`, then proof on each host — over SSH, with only the keys its
//! NixOS config would give sops — that it decrypts exactly the files it should. Prints each step,
//! the `.sops.yaml` diff and the access matrix; fails if any check fails; cleans up on the way out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use hostage_tests::sshd::SshdFleet;
use hostage_tests::SshKeyPair;

/// One demo host: its inventory entry and what it must be able to read.
struct DemoHost {
    name: &'static str,
    per_host_recipient: bool,
    infrastructure_key: bool,
    secrets: &'static [&'static str],
}

const HOSTS: &[DemoHost] = &[
    DemoHost {
        name: "gnomeregan",
        per_host_recipient: true,
        infrastructure_key: false,
        secrets: &["secrets/hosts/gnomeregan/.*"],
    },
    DemoHost {
        name: "ironforge",
        per_host_recipient: false,
        infrastructure_key: true,
        secrets: &["secrets/common/.*"],
    },
    DemoHost {
        name: "stormwind",
        per_host_recipient: true,
        infrastructure_key: true,
        secrets: &["secrets/hosts/stormwind/.*"],
    },
];

/// The files, and which hosts the operator means to read each (the workstation reads all).
const FILES: &[(&str, &[&str])] = &[
    ("secrets/workstation/notes.json", &[]),
    ("secrets/workstation/tokens.yaml", &[]),
    ("secrets/hosts/gnomeregan/wifi.env", &["gnomeregan"]),
    ("secrets/hosts/gnomeregan/db.yaml", &["gnomeregan"]),
    ("secrets/hosts/gnomeregan/tls.key", &["gnomeregan"]),
    ("secrets/hosts/stormwind/db.json", &["stormwind"]),
    ("secrets/hosts/stormwind/backup.env", &["stormwind"]),
    ("secrets/common/smtp.yaml", &["ironforge", "stormwind"]),
    ("secrets/common/ntp.json", &["ironforge", "stormwind"]),
    ("secrets/common/registry.env", &["ironforge", "stormwind"]),
    ("secrets/common/ca.pem", &["ironforge", "stormwind"]),
    ("secrets/infrastructure.yaml", &["ironforge", "stormwind"]),
];

fn sops_type(path: &str) -> &'static str {
    match Path::new(path).extension().and_then(|e| e.to_str()) {
        Some("yaml") => "yaml",
        Some("json") => "json",
        Some("env") => "dotenv",
        _ => "binary",
    }
}

fn plain(path: &str) -> &'static [u8] {
    match sops_type(path) {
        "yaml" => b"password: correct-horse\nnested:\n  token: t0k3n\n",
        "json" => b"{\"user\": \"admin\", \"password\": \"s3cret\"}\n",
        "dotenv" => b"USER=admin\nPASSWORD=s3cret\n",
        _ => b"-----BEGIN DEMO-----\nbinary secret\n-----END DEMO-----\n",
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Runs the demo; `sops` is the oracle binary, `hostage` the built binary. The caller has checked
/// the tools (`check_tools`).
pub fn demo(sops: &Path, hostage: &Path) -> anyhow::Result<()> {
    step("starting 3 loopback sshd hosts (throwaway host keys)");
    let mut fleet = SshdFleet::start(HOSTS.len());
    let ssh_config = fleet.ssh_config();
    let known_hosts = fleet.known_hosts();
    let work = fleet.dir.path().to_owned();
    for (host, sshd) in HOSTS.iter().zip(&fleet.hosts) {
        println!("    {:<11} root@{}:{}", host.name, sshd.address, sshd.port);
    }

    step("making throwaway keys: the workstation (age) and the infrastructure key (ssh ed25519)");
    let age_keygen = hostage_tests::find(hostage_tests::AGE_KEYGEN)
        .context("age-keygen: apt-get install -y age")?;
    let workstation_key = work.join("workstation.agekey");
    duct::cmd!(age_keygen, "-o", &workstation_key)
        .stderr_null()
        .run()?;
    let workstation = fs_err::read_to_string(&workstation_key)?
        .lines()
        .find_map(|l| l.strip_prefix("# public key: ").map(str::to_owned))
        .context("age-keygen wrote no public key")?;
    let infra = SshKeyPair::generate(&work, "id_infrastructure", "", None);
    let infrastructure = convert(hostage, &infra.public)?;
    println!("    workstation    {workstation}");
    println!("    infrastructure {infrastructure}");

    step("creating the secrets repo: seed-style .sops.yaml and 12 files encrypted by sops 3.11");
    let repo = work.join("secrets-repo");
    fs_err::create_dir_all(&repo)?;
    let git = |args: &[&str]| -> anyhow::Result<String> {
        Ok(duct::cmd("git", args)
            .dir(&repo)
            .env("GIT_AUTHOR_NAME", "demo")
            .env("GIT_AUTHOR_EMAIL", "demo@example.invalid")
            .env("GIT_COMMITTER_NAME", "demo")
            .env("GIT_COMMITTER_EMAIL", "demo@example.invalid")
            .stderr_to_stdout()
            .read()?)
    };
    git(&["init", "-q"])?;
    let config = format!(
        "# Recipients (age X25519, converted from SSH ed25519 keys with `hostage convert`):\n\
         #   workstation    - the operator's key, on every file (root of trust)\n\
         #   infrastructure - the shared key deployed to infrastructure hosts\n\
         keys:\n  - &workstation {workstation}\n  - &infrastructure {infrastructure}\n\
         creation_rules:\n  - path_regex: secrets/workstation/.*\n    key_groups:\n      - age:\n          - *workstation\n\
         \x20 - path_regex: .*\n    key_groups:\n      - age:\n          - *workstation\n          - *infrastructure\n"
    );
    fs_err::write(repo.join(".sops.yaml"), &config)?;
    for (file, _) in FILES {
        let path = repo.join(file);
        fs_err::create_dir_all(path.parent().context("a file has a directory")?)?;
        fs_err::write(&path, plain(file))?;
        let kind = sops_type(file);
        duct::cmd(
            sops,
            [
                "encrypt",
                "-i",
                "--input-type",
                kind,
                "--output-type",
                kind,
                file,
            ],
        )
        .dir(&repo)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .stdout_null()
        .run()
        .with_context(|| format!("sops encrypt {file}"))?;
        println!("    {file} ({kind})");
    }
    git(&["add", "-A"])?;
    git(&["commit", "-q", "-m", "secrets before onboarding"])?;

    step("writing the inventory");
    let deploy_path = work.join("deployed/id_infrastructure");
    fs_err::create_dir_all(work.join("deployed"))?;
    let mut hosts = String::new();
    for (host, sshd) in HOSTS.iter().zip(&fleet.hosts) {
        hosts.push_str(&format!(
            "  {}:\n    address: {}\n    port: {}\n    host_key_path: {}\n    per_host_recipient: {}\n    infrastructure_key: {}\n{}    secrets:\n{}",
            host.name,
            sshd.address,
            sshd.port,
            sshd.public_key_file().display(),
            host.per_host_recipient,
            host.infrastructure_key,
            // A host's own secrets are for it alone here, so the matrix shows per-host
            // recipients at work (the seed's default, `true`, also gives them to the
            // infrastructure key).
            if host.per_host_recipient {
                "    keep_infrastructure: false\n"
            } else {
                ""
            },
            host.secrets
                .iter()
                .map(|s| format!("      - {s}\n"))
                .collect::<String>()
        ));
    }
    let inventory = work.join("fleet.yaml");
    let inventory_text = format!(
        "# demo fleet (throwaway)\nsecrets_repo: secrets-repo\nrecipients:\n  workstation:\n    recipient: {workstation}\n    identity: {}\n  infrastructure:\n    recipient: {infrastructure}\n    private_key_file: {}\n    deploy_path: {}\nhosts:\n{hosts}",
        workstation_key.display(),
        infra.private.display(),
        deploy_path.display()
    );
    fs_err::write(&inventory, &inventory_text)?;
    print!("{}", indent(&inventory_text));

    let run_hostage = |args: &[&str]| -> anyhow::Result<String> {
        let mut all: Vec<String> = vec!["--inventory".into(), inventory.display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        all.extend([
            "--ssh-config".into(),
            ssh_config.display().to_string(),
            "--known-hosts".into(),
            known_hosts.display().to_string(),
        ]);
        println!("$ hostage {}", all.join(" "));
        let output = duct::cmd(hostage, &all)
            .dir(&work)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY_CMD")
            .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
            .env("HOME", &work)
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        print!("{}", indent(&text));
        if !output.status.success() {
            bail!("hostage {} failed", args.join(" "));
        }
        Ok(text)
    };

    let mut failures: Vec<String> = Vec::new();
    for host in HOSTS {
        step(&format!("onboarding {} (trust on first use)", host.name));
        run_hostage(&["onboard", host.name, "--trust-new"])?;
    }

    step("onboarding again: every host must be a no-op");
    let before = snapshot(&repo)?;
    for host in HOSTS {
        let text = run_hostage(&["onboard", host.name])?;
        if !text.contains("nothing to do") {
            failures.push(format!("a second onboard of {} was not a no-op", host.name));
        }
    }
    if snapshot(&repo)? != before {
        failures.push("a second onboard changed the secrets repo".into());
    }

    // Which sshd each host is now (a rebuilt host is a new sshd).
    let mut machine: Vec<usize> = (0..HOSTS.len()).collect();

    step("gnomeregan is rebuilt: a new machine with a new host key; rotating its identity");
    let old_gnomeregan_key = fleet.hosts[0]
        .host_key
        .as_ref()
        .context("demo hosts have ed25519 keys")?
        .private
        .clone();
    let rebuilt = fleet.add(hostage_tests::sshd::SshdOptions::default());
    let (old_sshd, new_sshd) = (&fleet.hosts[0], &fleet.hosts[rebuilt]);
    let text = fs_err::read_to_string(&inventory)?
        .replace(
            &format!(
                "address: {}\n    port: {}\n",
                old_sshd.address, old_sshd.port
            ),
            &format!(
                "address: {}\n    port: {}\n",
                new_sshd.address, new_sshd.port
            ),
        )
        .replace(
            &old_sshd.public_key_file().display().to_string(),
            &new_sshd.public_key_file().display().to_string(),
        );
    fs_err::write(&inventory, text)?;
    machine[0] = rebuilt;
    let new_fingerprint = new_sshd.fingerprint();
    println!("    the fingerprint read on the new machine's console: {new_fingerprint}");
    run_hostage(&[
        "rotate",
        "gnomeregan",
        "--expect-fingerprint",
        &new_fingerprint,
    ])?;

    step("rotating the infrastructure key (phases: add, deploy + verify, remove + rotate, retire)");
    let old_infra_key = infra.private.clone();
    let new_infra = SshKeyPair::generate(&work, "id_infrastructure.new", "", None);
    run_hostage(&[
        "rotate-infra",
        "--new-key",
        &new_infra.private.display().to_string(),
    ])?;

    step("hostage status: no drift left, and who reads what according to the files' metadata");
    let mut all: Vec<String> = vec!["--inventory".into(), inventory.display().to_string()];
    all.push("status".into());
    println!("$ hostage {}", all.join(" "));
    let output = duct::cmd(hostage, &all)
        .dir(&work)
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()?;
    print!("{}", indent(&String::from_utf8_lossy(&output.stdout)));
    if !output.status.success() {
        failures.push("hostage status found drift after onboarding every host".into());
    }

    step(".sops.yaml, before → after");
    print!("{}", indent(&git(&["diff", "--", ".sops.yaml"])?));

    step("proving access on each host, over SSH, with only the keys its NixOS config gives sops");
    // ssh trusts exactly the host keys onboarding verified and saved in pubkeys/.
    let pinned = work.join("known_hosts.pinned");
    let mut known = String::new();
    for (host, sshd) in HOSTS.iter().zip(machine.iter().map(|&i| &fleet.hosts[i])) {
        let key = fs_err::read_to_string(repo.join(format!("pubkeys/{}.pub", host.name)))?;
        known.push_str(&format!("[{}]:{} {}", sshd.address, sshd.port, key));
    }
    fs_err::write(&pinned, known)?;
    let mut matrix: BTreeMap<&str, Vec<(bool, bool)>> = BTreeMap::new();
    for (host, sshd) in HOSTS.iter().zip(machine.iter().map(|&i| &fleet.hosts[i])) {
        // sops.age.sshKeyPaths: the host key for a per-host recipient, the deployed key for
        // infrastructure hosts.
        let mut keys = Vec::new();
        if host.per_host_recipient {
            keys.push(
                sshd.host_key
                    .as_ref()
                    .context("demo hosts have ed25519 keys")?
                    .private
                    .clone(),
            );
        }
        if host.infrastructure_key {
            keys.push(deploy_path.clone());
        }
        let key_cmd = keys
            .iter()
            .map(|k| format!("{} convert --private {}", hostage.display(), k.display()))
            .collect::<Vec<_>>()
            .join("; ");
        println!(
            "    {}: SOPS_AGE_KEY_CMD runs `{}` on the host",
            host.name,
            key_cmd.replace(&format!("{} ", hostage.display()), "hostage ")
        );
        for (file, readers) in FILES {
            let kind = sops_type(file);
            let remote = format!(
                "cd '{}' && HOME=/nonexistent SOPS_DISABLE_VERSION_CHECK=1 SOPS_AGE_KEY_CMD=\"sh -c '{key_cmd}'\" '{}' decrypt --input-type {kind} --output-type {kind} '{file}' >/dev/null",
                repo.display(),
                sops.display(),
            );
            let output = duct::cmd(
                "ssh",
                [
                    "-o",
                    &format!("UserKnownHostsFile={}", pinned.display()),
                    "-F",
                    &ssh_config.display().to_string(),
                    "-p",
                    &sshd.port.to_string(),
                    &format!("root@{}", sshd.address),
                    &remote,
                ],
            )
            .stdout_null()
            .stderr_capture()
            .unchecked()
            .run()?;
            let status = output.status;
            let expected = readers.contains(&host.name);
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !status.success() && !stderr.contains("data key") {
                failures.push(format!(
                    "{} {file}: sops failed for another reason than a missing key: {}",
                    host.name,
                    stderr.trim()
                ));
            }
            matrix
                .entry(file)
                .or_default()
                .push((status.success(), expected));
            if status.success() != expected {
                let why = String::from_utf8_lossy(&output.stderr);
                let why = why.lines().last().unwrap_or("").trim().to_owned();
                failures.push(format!(
                    "{} {} {file}{}",
                    host.name,
                    if expected {
                        "cannot decrypt"
                    } else {
                        "CAN decrypt"
                    },
                    if expected {
                        format!(" ({why})")
                    } else {
                        String::new()
                    }
                ));
            }
        }
    }

    step("the workstation (root of trust) still decrypts every file, locally");
    for (file, _) in FILES {
        let kind = sops_type(file);
        let ok = duct::cmd(
            sops,
            ["decrypt", "--input-type", kind, "--output-type", kind, file],
        )
        .dir(&repo)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("SOPS_AGE_KEY_FILE", &workstation_key)
        .env("HOME", &work)
        .env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_CMD")
        .stdout_capture()
        .stderr_null()
        .unchecked()
        .run()?;
        // sops re-emits YAML and JSON in its own layout: compare the secret values.
        let text = String::from_utf8_lossy(&ok.stdout);
        let secret = ["correct-horse", "s3cret", "binary secret"]
            .iter()
            .find(|s| String::from_utf8_lossy(plain(file)).contains(*s))
            .copied()
            .unwrap_or_default();
        if !ok.status.success() || !text.contains(secret) {
            failures.push(format!(
                "the workstation cannot decrypt {file} to its plaintext"
            ));
        }
    }
    println!("    {} file(s) checked", FILES.len());

    step("the retired keys (gnomeregan's old host key, the old infrastructure key) open nothing");
    for old_key in [&old_gnomeregan_key, &old_infra_key] {
        for (file, _) in FILES {
            let kind = sops_type(file);
            let ok = duct::cmd(
                sops,
                ["decrypt", "--input-type", kind, "--output-type", kind, file],
            )
            .dir(&repo)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env(
                "SOPS_AGE_KEY_CMD",
                format!(
                    "{} convert --private {}",
                    hostage.display(),
                    old_key.display()
                ),
            )
            .env("HOME", "/nonexistent")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run()?;
            if ok.status.success() {
                failures.push(format!(
                    "the retired key {} still opens {file}",
                    old_key.display()
                ));
            }
        }
    }
    println!("    {} file(s) checked against 2 retired keys", FILES.len());

    step("access matrix (✓ decrypts, · does not; ✗ marks a check that failed)");
    print!("    {:<38}", "file");
    for host in HOSTS {
        print!(" {:>11}", host.name);
    }
    println!();
    for (file, _) in FILES {
        print!("    {file:<38}");
        for (can, expected) in &matrix[file] {
            let mark = match (can, can == expected) {
                (true, true) => "✓",
                (false, true) => "·",
                (_, false) => "✗",
            };
            print!(" {mark:>11}");
        }
        println!();
    }

    if failures.is_empty() {
        step("every check passed; removing the demo fleet");
        Ok(())
    } else {
        for failure in &failures {
            eprintln!("FAILED: {failure}");
        }
        bail!("{} check(s) failed", failures.len())
    }
}

fn convert(hostage: &Path, public: &Path) -> anyhow::Result<String> {
    let text = duct::cmd!(hostage, "convert", public).read()?;
    text.split_whitespace()
        .next()
        .map(str::to_owned)
        .context("hostage convert printed nothing")
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

fn snapshot(dir: &Path) -> anyhow::Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_name() == ".git" {
                continue;
            }
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else {
                out.insert(entry.path(), fs_err::read(entry.path())?);
            }
        }
    }
    Ok(out)
}

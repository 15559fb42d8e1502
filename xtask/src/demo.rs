//! `cargo xtask demo`: the main job, then a host's whole life, on a throwaway fleet. Three
//! loopback sshd hosts (from the test harness) and a secrets repo in the reference operator's
//! layout (`demo/repo.rs`: header labels, flat comma `age:` strings, `secrets/.*` last,
//! `*.sops.yaml` and YAML-inside `*.sops` files made by the real sops, `pubkeys/`,
//! `secrets/default.nix`). The steps:
//! 1. `hostage onboard` every host (twice: the second changes no byte), `hostage rotate` a
//!    rebuilt host's new identity, `hostage rotate-infra`, `hostage rotate-key workstation` (the
//!    operator's own key), `hostage status` (no drift, every recipient named), then proof — over SSH on
//!    each host with only the keys its NixOS config would give sops, and locally for the
//!    workstation and the retired keys — that each reads exactly what it should.
//! 2. The lifecycle: `hostage backup-host-key`, the host reinstalled with a fresh key and its
//!    identity put back by `hostage rotate --from-backup` (it still decrypts; no byte of the repo
//!    changes), then `hostage offboard` (its recipient is nowhere, its files have new data keys,
//!    the exposure report is printed, it decrypts nothing over SSH, `status` is clean).
//!
//! Prints each step, the `.sops.yaml` diffs (each checked to still be the seed layout: header
//! labels in step and aligned, workstation,infrastructure first, `secrets/.*` last) and the access
//! matrices; fails if any check fails; the fleet (sshd processes, temp dir) goes away on the way
//! out.

mod access;
mod repo;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use hostage_tests::sshd::SshdFleet;
use hostage_tests::SshKeyPair;

use access::{print_matrix, Judge, Machine};
use repo::{StartingKeys, FILES, HOSTS};

/// The host whose life the demo follows: rebuilt with a new identity, backed up, rebuilt again
/// and restored, then offboarded. Not an infrastructure host (offboarding one of those needs
/// `--rotate-infra`).
const LIFECYCLE_HOST: &str = "gnomeregan";

fn step(text: &str) {
    println!("\n==> {text}");
}

/// Whether a `hostage` verb gets the fleet's ssh config and known_hosts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ssh {
    Used,
    NotNeeded,
}

/// The demo's state between steps.
struct Demo<'a> {
    sops: &'a Path,
    hostage: &'a Path,
    fleet: SshdFleet,
    work: PathBuf,
    repo: PathBuf,
    inventory: PathBuf,
    ssh_config: PathBuf,
    known_hosts: PathBuf,
    /// The workstation's OpenSSH key (the operator's `~/.ssh/id_ed25519`).
    workstation_key: PathBuf,
    /// Where infrastructure hosts hold the deployed infrastructure key.
    deploy_path: PathBuf,
    /// Which sshd of the fleet each of [`HOSTS`] is now (a rebuilt host is a new sshd).
    machine: Vec<usize>,
    /// Keys that were replaced, which must open nothing.
    retired: Vec<(String, PathBuf)>,
    /// The infrastructure key's OpenSSH public line, as `pubkeys/infrastructure.pub` must hold it.
    infrastructure_public_line: String,
    /// The host offboarded so far, if any.
    offboarded: Option<&'static str>,
    failures: Vec<String>,
}

/// Runs the demo; `sops` is the oracle binary, `hostage` the built binary. The caller has checked
/// the tools (`check_tools`).
pub fn demo(sops: &Path, hostage: &Path) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut demo = Demo::start(sops, hostage)?;
    demo.onboard_every_host()?;
    demo.onboard_again_changes_nothing()?;
    demo.rotate_a_rebuilt_host()?;
    demo.rotate_infrastructure_key()?;
    demo.rotate_workstation_key()?;
    demo.status_is_clean("no drift left, every recipient named")?;
    demo.show_sops_yaml_diff(
        "onboarding and the rotations",
        &["workstation", "infrastructure", "gnomeregan", "stormwind"],
    )?;
    demo.prove_access()?;
    demo.back_up_host_key()?;
    demo.rebuild_and_restore_from_backup()?;
    demo.offboard()?;
    demo.status_is_clean("the offboarded host is gone from every rule and file")?;
    demo.finish(started)
}

impl<'a> Demo<'a> {
    /// Starts the fleet, makes the keys, the seed-layout repo and the inventory.
    fn start(sops: &'a Path, hostage: &'a Path) -> anyhow::Result<Self> {
        step("starting 3 loopback sshd hosts (throwaway host keys)");
        let fleet = SshdFleet::start(HOSTS.len());
        let work = fleet.dir.path().to_owned();
        for (host, sshd) in HOSTS.iter().zip(&fleet.hosts) {
            println!("    {:<11} root@{}:{}", host.name, sshd.address, sshd.port);
        }

        step("making throwaway keys: the workstation's and the infrastructure key (ssh ed25519)");
        let workstation = SshKeyPair::generate(&work, "id_ed25519", "", None);
        let infra = SshKeyPair::generate(&work, "id_infrastructure", "", None);
        let workstation_recipient = convert(hostage, &workstation.public)?;
        let infrastructure_recipient = convert(hostage, &infra.public)?;
        println!("    workstation    {workstation_recipient}");
        println!("    infrastructure {infrastructure_recipient}");

        step("creating the secrets repo in the seed layout; sops 3.11 encrypts the files");
        let repo = work.join("nix-secrets");
        fs_err::create_dir_all(&repo)?;
        let demo = Demo {
            sops,
            hostage,
            ssh_config: fleet.ssh_config(),
            known_hosts: fleet.known_hosts(),
            fleet,
            inventory: work.join("fleet.yaml"),
            deploy_path: work.join("deployed/id_infrastructure"),
            workstation_key: workstation.private.clone(),
            repo,
            work,
            machine: (0..HOSTS.len()).collect(),
            retired: Vec::new(),
            infrastructure_public_line: infra.public_line(),
            offboarded: None,
            failures: Vec::new(),
        };
        demo.git(&["init", "-q"])?;
        let keys = StartingKeys {
            workstation: &workstation_recipient,
            workstation_pub: &workstation.public_line(),
            infrastructure: &infrastructure_recipient,
            infrastructure_pub: &infra.public_line(),
        };
        repo::create(&demo.repo, sops, &keys)?;
        print!(
            "{}",
            indent(&fs_err::read_to_string(demo.repo.join(".sops.yaml"))?)
        );
        demo.git(&["add", "-A"])?;
        demo.git(&["commit", "-q", "-m", "secrets before onboarding"])?;

        step("writing the inventory (every host keeps the defaults: keep_infrastructure true)");
        fs_err::create_dir_all(demo.work.join("deployed"))?;
        let mut hosts = String::new();
        for (host, sshd) in HOSTS.iter().zip(&demo.fleet.hosts) {
            hosts.push_str(&format!(
                "  {}:\n    address: {}\n    port: {}\n    host_key_path: {}\n    per_host_recipient: {}\n    infrastructure_key: {}\n    secrets:\n{}",
                host.name,
                sshd.address,
                sshd.port,
                sshd.public_key_file().display(),
                host.per_host_recipient,
                host.infrastructure_key,
                host.secrets
                    .iter()
                    .map(|s| format!("      - {s}\n"))
                    .collect::<String>()
            ));
        }
        let inventory_text = format!(
            "# demo fleet (throwaway)\nsecrets_repo: nix-secrets\nrecipients:\n  workstation:\n    recipient: {workstation_recipient}\n    identity: {}\n  infrastructure:\n    recipient: {infrastructure_recipient}\n    private_key_file: {}\n    deploy_path: {}\nhosts:\n{hosts}",
            workstation.private.display(),
            infra.private.display(),
            demo.deploy_path.display()
        );
        fs_err::write(&demo.inventory, &inventory_text)?;
        print!("{}", indent(&inventory_text));
        println!(
            "    (every command below also gets --inventory {}; those that reach hosts get the \
             fleet's --ssh-config and --known-hosts)",
            demo.inventory.display()
        );
        Ok(demo)
    }

    /// Runs `hostage ARGS`, printing the command and its output; `Err` when it exits non-zero.
    fn hostage(&self, args: &[&str], ssh: Ssh) -> anyhow::Result<String> {
        let (code, text) = self.hostage_exit(args, ssh)?;
        match code {
            Some(0) => {}
            Some(code) => bail!("hostage {} failed (exit {code})", args.join(" ")),
            None => bail!("hostage {} was killed by a signal", args.join(" ")),
        }
        Ok(text)
    }

    /// Runs `hostage ARGS`, printing the command and its output; its exit code and output.
    fn hostage_exit(&self, args: &[&str], ssh: Ssh) -> anyhow::Result<(Option<i32>, String)> {
        println!("$ hostage {}", args.join(" "));
        let mut all: Vec<String> = vec!["--inventory".into(), self.inventory.display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        if ssh == Ssh::Used {
            all.extend([
                "--ssh-config".into(),
                self.ssh_config.display().to_string(),
                "--known-hosts".into(),
                self.known_hosts.display().to_string(),
            ]);
        }
        let output = duct::cmd(self.hostage, &all)
            .dir(&self.work)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY_CMD")
            .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
            .env("HOME", &self.work)
            .env("NO_COLOR", "1")
            .stderr_to_stdout()
            .stdout_capture()
            .unchecked()
            .run()?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        print!("{}", indent(&text));
        Ok((output.status.code(), text))
    }

    /// `git` in the secrets repo, as the operator.
    fn git(&self, args: &[&str]) -> anyhow::Result<String> {
        Ok(duct::cmd("git", args)
            .dir(&self.repo)
            .env("GIT_AUTHOR_NAME", "demo")
            .env("GIT_AUTHOR_EMAIL", "demo@example.invalid")
            .env("GIT_COMMITTER_NAME", "demo")
            .env("GIT_COMMITTER_EMAIL", "demo@example.invalid")
            .stderr_to_stdout()
            .read()?)
    }

    /// The sshd that host `index` of [`HOSTS`] is now.
    fn sshd(&self, index: usize) -> &hostage_tests::sshd::Sshd {
        &self.fleet.hosts[self.machine[index]]
    }

    fn host_index(name: &str) -> usize {
        HOSTS
            .iter()
            .position(|h| h.name == name)
            .expect("the demo names its own hosts")
    }

    /// The private host key file of host `index`'s machine.
    fn host_private_key(&self, index: usize) -> anyhow::Result<PathBuf> {
        Ok(self
            .sshd(index)
            .host_key
            .as_ref()
            .context("demo hosts have ed25519 keys")?
            .private
            .clone())
    }

    fn onboard_every_host(&mut self) -> anyhow::Result<()> {
        for host in HOSTS {
            step(&format!("onboarding {} (trust on first use)", host.name));
            self.hostage(&["onboard", host.name, "--trust-new"], Ssh::Used)?;
        }
        Ok(())
    }

    fn onboard_again_changes_nothing(&mut self) -> anyhow::Result<()> {
        step("onboarding again: every host must be a no-op (no byte changes)");
        let before = self.snapshot()?;
        for host in HOSTS {
            let text = self.hostage(&["onboard", host.name], Ssh::Used)?;
            if !text.contains("nothing to do") {
                self.failures
                    .push(format!("a second onboard of {} was not a no-op", host.name));
            }
        }
        if self.snapshot()? != before {
            self.failures
                .push("a second onboard changed the secrets repo or the inventory".into());
        }
        Ok(())
    }

    /// The host comes back as a new machine with a new host key: a new identity for it.
    fn rotate_a_rebuilt_host(&mut self) -> anyhow::Result<()> {
        step(&format!(
            "{LIFECYCLE_HOST} is rebuilt: a new machine with a new host key; rotating its identity"
        ));
        let index = Self::host_index(LIFECYCLE_HOST);
        let old_key = self.host_private_key(index)?;
        let rebuilt = self.fleet.add(hostage_tests::sshd::SshdOptions::default());
        let (old_sshd, new_sshd) = (self.sshd(index), &self.fleet.hosts[rebuilt]);
        let text = fs_err::read_to_string(&self.inventory)?
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
        fs_err::write(&self.inventory, text)?;
        let fingerprint = new_sshd.fingerprint();
        self.machine[index] = rebuilt;
        println!("    the fingerprint read on the new machine's console: {fingerprint}");
        self.hostage(
            &[
                "rotate",
                LIFECYCLE_HOST,
                "--expect-fingerprint",
                &fingerprint,
            ],
            Ssh::Used,
        )?;
        self.retired
            .push((format!("{LIFECYCLE_HOST}'s first host key"), old_key));
        Ok(())
    }

    fn rotate_infrastructure_key(&mut self) -> anyhow::Result<()> {
        step("rotating the infrastructure key (phases: add, deploy + verify, remove + rotate, retire)");
        let old = self.work.join("id_infrastructure");
        let new = SshKeyPair::generate(&self.work, "id_infrastructure.new", "", None);
        self.hostage(
            &[
                "rotate-infra",
                "--new-key",
                &new.private.display().to_string(),
            ],
            Ssh::Used,
        )?;
        self.retired
            .push(("the first infrastructure key".into(), old));
        self.infrastructure_public_line = new.public_line();
        Ok(())
    }

    /// The operator's own key rotation (the seed's second procedure), done by `rotate-key`:
    /// add the new key, re-key, prove the new identity opens every file, remove the old key
    /// with new data keys, point the inventory at the new identity. The judges after this step
    /// decrypt with the new key; the old one joins the retired keys, which must open nothing.
    fn rotate_workstation_key(&mut self) -> anyhow::Result<()> {
        step("rotating the workstation key (phases: add, re-key, prove the new identity, remove + rotate, retire)");
        let old = self.workstation_key.clone();
        let new = SshKeyPair::generate(&self.work, "id_ed25519.new", "", None);
        self.hostage(
            &[
                "rotate-key",
                "workstation",
                "--new-identity",
                &new.private.display().to_string(),
            ],
            Ssh::NotNeeded,
        )?;
        // `pubkeys/` documents every recipient: both rotated keys must be the new ones there.
        for (name, line) in [
            ("workstation", new.public_line()),
            ("infrastructure", self.infrastructure_public_line.clone()),
        ] {
            let held =
                fs_err::read_to_string(self.repo.join("pubkeys").join(format!("{name}.pub")))?;
            // The key itself (type and base64), not the comment after it.
            let key = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            if key(&held) != key(&line) {
                self.failures.push(format!(
                    "pubkeys/{name}.pub does not hold the rotated {name} key"
                ));
            }
        }
        self.retired.push(("the first workstation key".into(), old));
        self.workstation_key = new.private;
        Ok(())
    }

    fn status_is_clean(&mut self, what: &str) -> anyhow::Result<()> {
        step(&format!("hostage status: {what}"));
        let (code, text) = self.hostage_exit(&["status"], Ssh::NotNeeded)?;
        if code != Some(0) {
            self.failures
                .push(format!("hostage status exited {code:?}, not 0 ({what})"));
        }
        // A recipient nothing names shows as `?age1…`.
        if text.contains("?age1") {
            self.failures.push(format!(
                "hostage status shows a recipient without a name ({what})"
            ));
        }
        Ok(())
    }

    /// Prints the `.sops.yaml` diff since the last demo commit, checks the file is still in the
    /// seed layout with these header labels, then commits the repo.
    fn show_sops_yaml_diff(&mut self, since: &str, labels: &[&str]) -> anyhow::Result<()> {
        step(&format!(".sops.yaml, before → after {since}"));
        print!("{}", indent(&self.git(&["diff", "--", ".sops.yaml"])?));
        let text = fs_err::read_to_string(self.repo.join(".sops.yaml"))?;
        let problems = repo::seed_layout_problems(&text, labels);
        if problems.is_empty() {
            println!(
                "    still the seed layout: header labels {} aligned and in use, \
                 workstation,infrastructure first, secrets/.* last",
                labels.join(", ")
            );
        }
        self.failures.extend(
            problems
                .into_iter()
                .map(|p| format!(".sops.yaml after {since}: {p}")),
        );
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "-m", &format!("after {since}")])?;
        Ok(())
    }

    fn judge(&self) -> Judge<'_> {
        Judge {
            sops: self.sops,
            hostage: self.hostage,
            repo: &self.repo,
            work: &self.work,
            ssh_config: &self.ssh_config,
        }
    }

    /// Every host, reached with the key onboarding pinned in `pubkeys/` (an offboarded host,
    /// whose `.pub` is gone, with the key it still has).
    fn machines(&self) -> anyhow::Result<Vec<Machine>> {
        let mut machines = Vec::new();
        for (index, host) in HOSTS.iter().enumerate() {
            let sshd = self.sshd(index);
            let pinned = self.repo.join(format!("pubkeys/{}.pub", host.name));
            let line = if pinned.is_file() {
                fs_err::read_to_string(pinned)?
            } else {
                fs_err::read_to_string(sshd.public_key_file())?
            };
            let mut key_paths = Vec::new();
            if host.per_host_recipient {
                key_paths.push(self.host_private_key(index)?);
            }
            if host.infrastructure_key {
                key_paths.push(self.deploy_path.clone());
            }
            machines.push(Machine {
                name: host.name,
                address: sshd.address.to_string(),
                port: sshd.port,
                host_key_line: line,
                key_paths,
            });
        }
        Ok(machines)
    }

    /// Over SSH, each host reads exactly its files; the workstation reads all; retired keys
    /// read nothing; then the matrix.
    fn prove_access(&mut self) -> anyhow::Result<()> {
        step(
            "proving access on each host, over SSH, with only the keys its NixOS config gives sops",
        );
        let machines = self.machines()?;
        let mut failures = Vec::new();
        let judge = self.judge();
        let matrix = judge.prove_over_ssh(&machines, self.offboarded, &mut failures)?;

        step("the workstation (root of trust) decrypts every file, locally");
        judge.workstation_reads_all(&self.workstation_key, &mut failures)?;

        step("the retired keys open nothing");
        judge.retired_keys_read_nothing(&self.retired, &mut failures)?;

        step("access matrix (✓ decrypts, · does not; ✗ marks a check that failed)");
        let names: Vec<&str> = HOSTS.iter().map(|h| h.name).collect();
        print_matrix(&names, &matrix);
        self.failures.extend(failures);
        Ok(())
    }

    fn back_up_host_key(&mut self) -> anyhow::Result<()> {
        step(&format!(
            "backing up {LIFECYCLE_HOST}'s identity into the repo (read over the pinned session)"
        ));
        self.hostage(&["backup-host-key", LIFECYCLE_HOST], Ssh::Used)?;
        let backup = format!("secrets/host/{LIFECYCLE_HOST}/ssh_host_ed25519_key.sops");
        let key = fs_err::read_to_string(self.host_private_key(Self::host_index(LIFECYCLE_HOST))?)?;
        let extracted = self.judge().decrypt_path_locally(
            &backup,
            &["--extract", "[\"data\"]"],
            std::slice::from_ref(&self.workstation_key),
        )?;
        if extracted.as_deref() != Some(key.as_str()) {
            self.failures.push(format!(
                "sops (as the workstation) does not extract {LIFECYCLE_HOST}'s host key from {backup}"
            ));
        } else {
            println!("    sops decrypt --extract '[\"data\"]' {backup}: the host's key file, byte for byte");
        }
        let before = self.snapshot()?;
        self.hostage(&["backup-host-key", LIFECYCLE_HOST], Ssh::Used)?;
        if self.snapshot()? != before {
            self.failures
                .push("a second backup-host-key changed the repo".into());
        }
        self.git(&["add", "-A"])?;
        self.git(&["commit", "-q", "-m", "backup-host-key"])?;
        Ok(())
    }

    /// The host is reinstalled and comes up with a fresh key; its backed-up identity is put
    /// back. Nothing in the repo changes, and the host still reads its files.
    fn rebuild_and_restore_from_backup(&mut self) -> anyhow::Result<()> {
        step(&format!(
            "{LIFECYCLE_HOST} is reinstalled (a fresh host key); restoring its identity from the backup"
        ));
        let index = Self::host_index(LIFECYCLE_HOST);
        let private = self.host_private_key(index)?;
        let public = self.sshd(index).public_key_file();
        let original = fs_err::read(&private)?;
        // sshd reads its host key per connection, so new connections see the reinstalled key.
        let fresh = SshKeyPair::generate(&self.work, "reinstalled_host_key", "", None);
        fs_err::copy(&fresh.private, &private)?;
        fs_err::copy(&fresh.public, &public)?;
        let fingerprint = hostage_tests::sshd::fingerprint_of(&public);
        println!("    the fingerprint read on the reinstalled machine's console: {fingerprint}");
        let before = self.snapshot()?;
        self.hostage(
            &[
                "rotate",
                LIFECYCLE_HOST,
                "--from-backup",
                "--expect-fingerprint",
                &fingerprint,
            ],
            Ssh::Used,
        )?;
        if fs_err::read(&private)? != original {
            self.failures.push(format!(
                "{LIFECYCLE_HOST}'s host key file is not the backed-up key after --from-backup"
            ));
        }
        if self.snapshot()? != before {
            self.failures.push(
                "restoring from the backup changed the repo or the inventory (it must re-key nothing)"
                    .into(),
            );
        } else {
            println!("    no byte of the repo or the inventory changed: nothing was re-keyed");
        }
        println!(
            "    (no sshd restart needed here: the demo's sshd reads its host key per connection)"
        );
        let (code, _) = self.hostage_exit(&["status", LIFECYCLE_HOST, "--online"], Ssh::Used)?;
        if code != Some(0) {
            self.failures.push(format!(
                "hostage status {LIFECYCLE_HOST} --online exited {code:?} after the restore, not 0"
            ));
        }
        step(&format!(
            "{LIFECYCLE_HOST} decrypts its files again, over SSH, with the restored key"
        ));
        let machines: Vec<Machine> = self
            .machines()?
            .into_iter()
            .filter(|m| m.name == LIFECYCLE_HOST)
            .collect();
        let mut failures = Vec::new();
        let matrix = self
            .judge()
            .prove_over_ssh(&machines, self.offboarded, &mut failures)?;
        let readable = matrix
            .values()
            .filter(|v| v.iter().all(|(can, _)| *can))
            .count();
        println!("    {readable} file(s) decrypted, as before the reinstall");
        self.failures.extend(failures);
        Ok(())
    }

    /// Decommissions the lifecycle host and proves it is locked out.
    fn offboard(&mut self) -> anyhow::Result<()> {
        step(&format!(
            "offboarding {LIFECYCLE_HOST} (no SSH needed: the host may be gone)"
        ));
        let index = Self::host_index(LIFECYCLE_HOST);
        let recipient = convert(
            self.hostage,
            &self.repo.join(format!("pubkeys/{LIFECYCLE_HOST}.pub")),
        )?;
        let exposed: Vec<&str> = FILES
            .iter()
            .filter(|f| f.readable_by(LIFECYCLE_HOST, None))
            .map(|f| f.path)
            .collect();
        let ciphertexts_before = exposed
            .iter()
            .map(|f| {
                Ok((
                    *f,
                    encrypted_values(&fs_err::read_to_string(self.repo.join(f))?),
                ))
            })
            .collect::<anyhow::Result<BTreeMap<_, _>>>()?;
        let planned = self.snapshot()?;
        self.hostage(&["offboard", LIFECYCLE_HOST, "--dry-run"], Ssh::NotNeeded)?;
        if self.snapshot()? != planned {
            self.failures
                .push("offboard --dry-run changed the repo or the inventory".into());
        }
        let text = self.hostage(&["offboard", LIFECYCLE_HOST], Ssh::NotNeeded)?;
        self.offboarded = Some(LIFECYCLE_HOST);
        // The exposure report names every file the host could read.
        let report = text
            .lines()
            .find(|line| line.starts_with("exposure:"))
            .unwrap_or_default();
        for file in &exposed {
            if !report.contains(file) {
                self.failures
                    .push(format!("offboard's exposure report does not name {file}"));
            }
        }

        step(&format!(
            "{LIFECYCLE_HOST}'s recipient is nowhere; its former files have new data keys"
        ));
        let mut mentions = Vec::new();
        for (path, bytes) in self.snapshot()? {
            if String::from_utf8_lossy(&bytes).contains(&recipient) {
                mentions.push(path.display().to_string());
            }
        }
        if mentions.is_empty() {
            println!("    {recipient}: in no file of the repo and not in the inventory");
        } else {
            self.failures.push(format!(
                "{LIFECYCLE_HOST}'s recipient is still in {}",
                mentions.join(", ")
            ));
        }
        for gone in [
            format!("pubkeys/{LIFECYCLE_HOST}.pub"),
            format!("secrets/host/{LIFECYCLE_HOST}/ssh_host_ed25519_key.sops"),
        ] {
            if self.repo.join(&gone).exists() {
                self.failures.push(format!("offboard left {gone}"));
            }
        }
        // A new data key re-encrypts every value: no ciphertext of before survives.
        for (file, before) in &ciphertexts_before {
            let after = encrypted_values(&fs_err::read_to_string(self.repo.join(file))?);
            if after.iter().any(|value| before.contains(value)) {
                self.failures
                    .push(format!("{file} kept its data key after offboarding"));
            }
        }
        println!(
            "    {} file(s) {LIFECYCLE_HOST} could read: every value re-encrypted under a new data key",
            ciphertexts_before.len()
        );
        self.show_sops_yaml_diff(
            &format!("offboarding {LIFECYCLE_HOST}"),
            &["workstation", "infrastructure", "stormwind"],
        )?;

        // The machine still runs (decommissioning it is the operator's next step): it must
        // decrypt nothing it could before.
        self.retired.push((
            format!("{LIFECYCLE_HOST}'s host key (offboarded)"),
            self.host_private_key(index)?,
        ));
        self.prove_access()?;

        let before = self.snapshot()?;
        let text = self.hostage(&["offboard", LIFECYCLE_HOST], Ssh::NotNeeded);
        match text {
            Ok(_) if self.snapshot()? == before => {}
            Ok(_) => self
                .failures
                .push("a second offboard changed the repo or the inventory".into()),
            Err(error) => self
                .failures
                .push(format!("a second offboard failed: {error}")),
        }
        Ok(())
    }

    fn finish(self, started: Instant) -> anyhow::Result<()> {
        let seconds = started.elapsed().as_secs_f64();
        if self.failures.is_empty() {
            step(&format!(
                "every check passed in {seconds:.1} s; removing the demo fleet"
            ));
            Ok(())
        } else {
            for failure in &self.failures {
                eprintln!("FAILED: {failure}");
            }
            bail!("{} check(s) failed", self.failures.len())
        }
    }

    /// Every file of the repo (but `.git/`) and the inventory, by path.
    fn snapshot(&self) -> anyhow::Result<BTreeMap<PathBuf, Vec<u8>>> {
        let mut out = BTreeMap::new();
        out.insert(self.inventory.clone(), fs_err::read(&self.inventory)?);
        let mut stack = vec![self.repo.clone()];
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
}

/// The `ENC[AES256_GCM,…]` values of a sops file (the data and the MAC).
fn encrypted_values(text: &str) -> Vec<String> {
    text.split("ENC[")
        .skip(1)
        .filter_map(|rest| rest.split_once(']').map(|(value, _)| value.to_owned()))
        .collect()
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

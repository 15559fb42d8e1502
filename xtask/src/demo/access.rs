//! The demo's judges: who decrypts what, proved by the real sops — on each host over SSH with only
//! the keys its NixOS config would give sops-nix (`sops.age.sshKeyPaths`), and locally for the
//! workstation and for retired keys — and the access matrix that shows it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::repo::{DemoFile, FILES};

/// What the judges run and where.
pub struct Judge<'a> {
    pub sops: &'a Path,
    pub hostage: &'a Path,
    pub repo: &'a Path,
    pub work: &'a Path,
    pub ssh_config: &'a Path,
}

/// One host as ssh reaches it for the proof.
pub struct Machine {
    pub name: &'static str,
    pub address: String,
    pub port: u16,
    /// The OpenSSH public key line ssh must see (the one onboarding pinned in `pubkeys/`).
    pub host_key_line: String,
    /// `sops.age.sshKeyPaths` on the host: its host key when it is a recipient, the deployed
    /// infrastructure key when it holds that.
    pub key_paths: Vec<PathBuf>,
}

/// Per file, per host (in the order proved): (decrypts, should decrypt).
pub type Matrix = BTreeMap<&'static str, Vec<(bool, bool)>>;

impl Judge<'_> {
    /// `SOPS_AGE_KEY_CMD` converting these OpenSSH keys as sops-nix does (`ssh-to-age`).
    fn key_cmd(&self, keys: &[PathBuf]) -> String {
        keys.iter()
            .map(|k| {
                format!(
                    "{} convert --private {}",
                    self.hostage.display(),
                    k.display()
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Decrypts every file on every machine over SSH (one connection per host, one sops run per
    /// file), ssh trusting only the given host key lines. `offboarded` names a host that is gone
    /// (its expectations change, see [`DemoFile::readable_by`]).
    pub fn prove_over_ssh(
        &self,
        machines: &[Machine],
        offboarded: Option<&str>,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<Matrix> {
        let known_hosts = self.work.join("known_hosts.pinned");
        let known: String = machines
            .iter()
            .map(|m| format!("[{}]:{} {}\n", m.address, m.port, m.host_key_line.trim()))
            .collect();
        fs_err::write(&known_hosts, known)?;
        let mut matrix = Matrix::new();
        for machine in machines {
            let key_cmd = self.key_cmd(&machine.key_paths);
            println!(
                "    {}: SOPS_AGE_KEY_CMD runs `{}` on the host",
                machine.name,
                key_cmd.replace(&format!("{} ", self.hostage.display()), "hostage ")
            );
            let quoted: String = FILES.iter().map(|f| format!(" '{}'", f.path)).collect();
            let remote = format!(
                "cd '{repo}' || exit 9\n\
                 export HOME=/nonexistent SOPS_DISABLE_VERSION_CHECK=1 SOPS_AGE_KEY_CMD=\"sh -c '{key_cmd}'\"\n\
                 for f in{quoted}; do\n\
                 \x20 if err=$('{sops}' decrypt --input-type yaml --output-type yaml \"$f\" 2>&1 >/dev/null); then\n\
                 \x20   echo \"ok $f\"\n\
                 \x20 else\n\
                 \x20   echo \"no $f $(printf '%s' \"$err\" | tr '\\n' ' ')\"\n\
                 \x20 fi\n\
                 done\n",
                repo = self.repo.display(),
                sops = self.sops.display(),
            );
            let output = duct::cmd(
                "ssh",
                [
                    "-o",
                    &format!("UserKnownHostsFile={}", known_hosts.display()),
                    "-o",
                    "StrictHostKeyChecking=yes",
                    "-F",
                    &self.ssh_config.display().to_string(),
                    "-p",
                    &machine.port.to_string(),
                    &format!("root@{}", machine.address),
                    &remote,
                ],
            )
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()?;
            if !output.status.success() {
                failures.push(format!(
                    "{}: the proof over SSH did not run: {}",
                    machine.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
                continue;
            }
            let answers = String::from_utf8_lossy(&output.stdout);
            for file in FILES {
                let answer = answers.lines().find_map(|line| {
                    let (verdict, rest) = line.split_once(' ')?;
                    let why = rest.strip_prefix(file.path)?;
                    (why.is_empty() || why.starts_with(' ')).then_some((verdict, why.trim()))
                });
                let Some((verdict, why)) = answer else {
                    failures.push(format!(
                        "{} {}: no answer over SSH",
                        machine.name, file.path
                    ));
                    continue;
                };
                let can = verdict == "ok";
                let expected = file.readable_by(machine.name, offboarded);
                if !can && !why.contains("data key") {
                    failures.push(format!(
                        "{} {}: sops failed for another reason than a missing key: {why}",
                        machine.name, file.path
                    ));
                }
                if can != expected {
                    failures.push(format!(
                        "{} {} {}",
                        machine.name,
                        if expected {
                            "cannot decrypt"
                        } else {
                            "CAN decrypt"
                        },
                        file.path
                    ));
                }
                matrix.entry(file.path).or_default().push((can, expected));
            }
        }
        Ok(matrix)
    }

    /// Runs the real sops locally with only `keys` (OpenSSH private keys, converted as
    /// sops-nix and the operator's `ssh-to-age -private-key` do): the plaintext, when it opens.
    pub fn decrypt_locally(
        &self,
        file: &DemoFile,
        keys: &[PathBuf],
    ) -> anyhow::Result<Option<String>> {
        self.decrypt_path_locally(file.path, &[], keys)
    }

    /// [`Judge::decrypt_locally`] for any repo path, with extra sops arguments (`--extract`).
    pub fn decrypt_path_locally(
        &self,
        path: &str,
        extra: &[&str],
        keys: &[PathBuf],
    ) -> anyhow::Result<Option<String>> {
        let mut args = vec!["decrypt", "--input-type", "yaml", "--output-type", "yaml"];
        args.extend_from_slice(extra);
        args.push(path);
        let output = duct::cmd(self.sops, &args)
            .dir(self.repo)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env(
                "SOPS_AGE_KEY_CMD",
                format!("sh -c '{}'", self.key_cmd(keys)),
            )
            .env("HOME", "/nonexistent")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .stdout_capture()
            .stderr_null()
            .unchecked()
            .run()
            .with_context(|| format!("running sops decrypt {path}"))?;
        Ok(output
            .status
            .success()
            .then(|| String::from_utf8_lossy(&output.stdout).into_owned()))
    }

    /// The workstation (root of trust) decrypts every file to its plaintext.
    pub fn workstation_reads_all(
        &self,
        workstation_key: &Path,
        failures: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        for file in FILES {
            let plain = self.decrypt_locally(file, &[workstation_key.to_owned()])?;
            if !plain.is_some_and(|p| p.contains(file.secret())) {
                failures.push(format!(
                    "the workstation cannot decrypt {} to its plaintext",
                    file.path
                ));
            }
        }
        println!("    {} file(s) checked", FILES.len());
        Ok(())
    }

    /// Keys that were replaced open no file. One sops run per file with every retired key at
    /// once (none opens it exactly when all of them together do not); a file that opens is then
    /// tried key by key to name the culprit.
    pub fn retired_keys_read_nothing(
        &self,
        retired: &[(String, PathBuf)],
        failures: &mut Vec<String>,
    ) -> anyhow::Result<()> {
        let keys: Vec<PathBuf> = retired.iter().map(|(_, key)| key.clone()).collect();
        for file in FILES {
            if self.decrypt_locally(file, &keys)?.is_none() {
                continue;
            }
            for (what, key) in retired {
                if self
                    .decrypt_locally(file, std::slice::from_ref(key))?
                    .is_some()
                {
                    failures.push(format!("{what} (retired) still opens {}", file.path));
                }
            }
        }
        for (what, _) in retired {
            println!("    {what}");
        }
        println!("    together open none of the {} files", FILES.len());
        Ok(())
    }
}

/// Prints the matrix: ✓ decrypts, · does not, ✗ a check that failed.
pub fn print_matrix(hosts: &[&str], matrix: &Matrix) {
    print!("    {:<48}", "file");
    for host in hosts {
        print!(" {host:>11}");
    }
    println!();
    for file in FILES {
        print!("    {:<48}", file.path);
        for (can, expected) in matrix.get(file.path).map(Vec::as_slice).unwrap_or(&[]) {
            let mark = match (can, can == expected) {
                (true, true) => "✓",
                (false, true) => "·",
                (_, false) => "✗",
            };
            print!(" {mark:>11}");
        }
        println!();
    }
}

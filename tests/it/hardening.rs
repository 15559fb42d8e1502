//! What hostage does to its own process (issue 12 items 4 and 11): the secret variables never
//! reach a child (judged through real ssh and its `LocalCommand` from the user's config), and a
//! running hostage cannot dump core.

use hostage_tests::sshd::SshdFleet;
use hostage_tests::{hostage_bin, SshKeyPair};
use tempfile::TempDir;

use crate::remote_common::{command, key_paths, specs};

const MARKERS: [(&str, &str); 3] = [
    ("SOPS_AGE_KEY", "AGE-SECRET-KEY-1MARKERNEVERINACHILD"),
    (
        "HOSTAGE_SSH_PASSPHRASE",
        "passphrase-marker-never-in-a-child",
    ),
    (
        "SSH_TO_AGE_PASSPHRASE",
        "ssh-to-age-marker-never-in-a-child",
    ),
];

#[test]
fn secret_variables_do_not_reach_ssh_or_the_local_command_of_the_users_config() {
    let mut fleet = SshdFleet::start(1);
    fleet.trust_all_in_known_hosts();
    let seen = fleet.dir.path().join("local-command-env");
    // The user's own ssh config runs a command on the workstation after each connection: it
    // sees exactly the environment ssh got from hostage.
    fleet.ssh_config_extra = format!(
        "PermitLocalCommand yes\nLocalCommand env > \"{}\"\n",
        seen.display()
    );
    let mut fetch = command(
        &fleet,
        "fetch",
        &[specs(&fleet), key_paths(&fleet)].concat(),
    );
    for (name, value) in MARKERS {
        fetch.env(name, value);
    }
    let out = fetch.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let env = fs_err::read_to_string(&seen).expect("ssh ran the LocalCommand");
    assert!(env.contains("PATH="), "{env}");
    for (name, value) in MARKERS {
        assert!(
            !env.contains(name) && !env.contains(value),
            "{name} reached ssh's LocalCommand:\n{env}"
        );
    }
}

#[test]
fn a_hostage_waiting_at_a_prompt_cannot_dump_core() {
    let dir = TempDir::new().unwrap();
    let pair = SshKeyPair::generate(dir.path(), "laptop", "typed-at-tty", None);
    let command = format!(
        "{} convert --private {}",
        hostage_bin().display(),
        pair.private.display()
    );
    let key = pair.private.display().to_string();
    let mut limits = None;
    hostage_tests::answer_on_terminal_after(
        &command,
        |script| {
            script
                .env_remove("HOSTAGE_SSH_PASSPHRASE")
                .env_remove("SSH_TO_AGE_PASSPHRASE");
        },
        "passphrase for SHA256:",
        |_| {
            let pid = waiting_hostage(&key);
            limits = Some(fs_err::read_to_string(format!("/proc/{pid}/limits")).unwrap());
        },
        "typed-at-tty",
    );
    let limits = limits.unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap_or_else(|| panic!("{limits}"));
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

/// The pid of the `hostage convert --private KEY` process (not the `script` or shell around it).
fn waiting_hostage(key: &str) -> u32 {
    let bin = hostage_bin().display().to_string();
    for entry in fs_err::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = fs_err::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let argv: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.first() == Some(&bin) && argv.iter().any(|a| a == key) {
            return pid;
        }
    }
    panic!("no running `hostage convert --private {key}`");
}

/// Issue 12 item 7: an inventory `address` with a quote and newlines would add directives to
/// the ssh config hostage writes (`Match originalhost "…"`). Upstream OpenSSH before 9.6 runs
/// them; Debian 12's 9.2 refuses the host name itself ("hostname contains invalid characters"),
/// so before the fix this failed only on the message: ssh's, not the inventory's file:line. Now
/// the inventory is refused at load, naming its line, and no ssh runs.
#[test]
fn an_inventory_address_that_would_inject_ssh_directives_is_refused_at_load() {
    let w = crate::workflow_support::world();
    let marker = w.fleet.dir.path().join("proxy-command-ran");
    let host = &w.fleet.hosts[0];
    let hostile = format!(
        "address: \"x\\\"\\nMatch all\\nProxyCommand /usr/bin/touch {}\\nMatch originalhost \\\"x\"",
        marker.display()
    );
    let text = w
        .inventory_text()
        .replacen(&format!("address: {}", host.address), &hostile, 1);
    fs_err::write(&w.inventory, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("proxy-command-ran"))
        .unwrap()
        + 1;

    let out = w.hostage(&["fetch", "h0"]);
    assert!(!marker.exists(), "ssh ran the injected ProxyCommand");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{err}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        err.contains(&format!("fleet.yaml:{line}:5: host `h0`: address")),
        "{err}{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(err.contains("newline"), "{err}");
}

//! Helpers of the fleet suites: run the real `hostage` binary against a [`SshdFleet`].

use std::path::{Path, PathBuf};
use std::process::Output;

use hostage_tests::sshd::SshdFleet;
use serde_json::Value;

/// Runs `hostage --json VERB ARGS…` with the fleet's ssh config and known_hosts, `$TMPDIR`
/// inside the fleet dir (so its control sockets can be found), and returns the output.
pub fn hostage(fleet: &SshdFleet, verb: &str, args: &[String]) -> Output {
    command(fleet, verb, args)
        .output()
        .expect("the hostage binary runs")
}

/// The command [`hostage`] runs, for tests that need to watch or signal it.
pub fn command(fleet: &SshdFleet, verb: &str, args: &[String]) -> std::process::Command {
    let tmp = tmp_dir(fleet);
    let mut command = std::process::Command::new(hostage_tests::hostage_bin());
    command
        .arg("--json")
        .arg(verb)
        .arg("--ssh-config")
        .arg(fleet.ssh_config())
        .arg("--known-hosts")
        .arg(fleet.known_hosts())
        .arg("--pins")
        .arg(fleet.dir.path().join("pins"))
        .args(args)
        .env("TMPDIR", tmp)
        .stdin(std::process::Stdio::null());
    command
}

/// The `$TMPDIR` hostage gets: its run directories (and so its ssh masters) live here.
pub fn tmp_dir(fleet: &SshdFleet) -> PathBuf {
    let tmp = fleet.dir.path().join("tmp");
    fs_err::create_dir_all(&tmp).expect("a tmp dir");
    tmp
}

/// `--key-path-for` arguments pointing each host at its own key file.
pub fn key_paths(fleet: &SshdFleet) -> Vec<String> {
    fleet
        .hosts
        .iter()
        .flat_map(|h| {
            [
                "--key-path-for".to_owned(),
                format!("{}={}", h.spec(), h.public_key_file().display()),
            ]
        })
        .collect()
}

/// Every host's spec.
pub fn specs(fleet: &SshdFleet) -> Vec<String> {
    fleet.hosts.iter().map(|h| h.spec()).collect()
}

/// The JSON lines of a run: host records (by host spec) and the summary.
pub struct Report {
    /// `data` of every `{"type":"host"}` line.
    pub hosts: Vec<Value>,
    /// `data` of the summary line.
    pub summary: Value,
    /// Exit code.
    pub code: i32,
    /// stdout and stderr, for failure messages.
    pub text: String,
}

impl Report {
    /// Parses a run's output.
    pub fn of(output: &Output) -> Self {
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let text = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
        let mut hosts = Vec::new();
        let mut summary = Value::Null;
        for line in stdout.lines() {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{text}"));
            match value["type"].as_str() {
                Some("host") => hosts.push(value["data"].clone()),
                Some("summary") => summary = value["data"].clone(),
                other => panic!("unknown record type {other:?}\n{text}"),
            }
        }
        Self {
            hosts,
            summary,
            code: output.status.code().unwrap_or(-1),
            text,
        }
    }

    /// The record of the host with this spec.
    pub fn host(&self, spec: &str) -> &Value {
        self.hosts
            .iter()
            .find(|h| h["host"] == spec)
            .unwrap_or_else(|| panic!("no record for {spec}\n{}", self.text))
    }

    /// The error kind of a host (`None` when it succeeded).
    pub fn error_kind(&self, spec: &str) -> Option<String> {
        self.host(spec)["error"]["kind"].as_str().map(str::to_owned)
    }

    /// The error message of a host.
    pub fn error_message(&self, spec: &str) -> String {
        self.host(spec)["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// Asserts no ssh process of the run is left (masters included).
pub fn assert_no_stray_ssh(fleet: &SshdFleet) {
    let needle = tmp_dir(fleet).display().to_string();
    // A master told to exit may need a moment to go.
    for _ in 0..50 {
        if hostage_tests::sshd::ssh_processes_mentioning(&needle).is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "stray ssh processes: {:#?}",
        hostage_tests::sshd::ssh_processes_mentioning(&needle)
    );
}

/// The age recipient the recipients crate derives from a public key file.
pub fn recipient_of(public_key_file: &Path) -> String {
    let text = fs_err::read_to_string(public_key_file).expect("the key file");
    let line = hostage_recipients::parse_key_lines(&text)
        .into_iter()
        .next()
        .expect("a key line")
        .expect("an ed25519 key");
    line.key
        .to_age_recipient()
        .expect("a recipient")
        .to_string()
}

//! `hostage onboard` and `hostage rotate` SIGKILLed at each point between two of their writes
//! (strace injects the kill as the real binary's main thread enters the system call, with no
//! hook in the product: docs/ARCHITECTURE.md, "Crash tests"). The next run must finish the job
//! to the uninterrupted run's end state, print the exposure report the killed run owed, and
//! remove the journal last; a third run changes nothing, and a later `hostage rekey` finds no
//! interrupted run to finish.

use hostage_tests::sshd::SshdOptions;

use crate::rekey_support::{stderr, stdout};
use crate::workflow_support::{key_of_ssh, world, World, FILES};

/// The file both workflows re-key: h1's own secret, which loses a recipient in both.
const API: &str = "secrets/hosts/h1/api.json";

/// What a killed run left, each compared with the world before the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Left {
    /// `pubkeys/h1.pub` written.
    public_key: bool,
    /// `.sops.yaml` edited.
    config: bool,
    /// `api.json` re-keyed.
    rekeyed: bool,
    /// The new pin recorded in the inventory.
    pinned: bool,
    /// The re-key journal present.
    journal: bool,
}

/// Where a killed run dies: strace's `inject` (`/^rename:when=N`, counted on the main thread,
/// or `/^unlink` selected by `path`) and what the run had written by then. Both workflows write
/// in the same order: the journal, `pubkeys/h1.pub`, `.sops.yaml`, `api.json`, the inventory
/// (five renames), then the journal's unlink, last.
struct KillPoint {
    inject: &'static str,
    path: Option<&'static str>,
    between: &'static str,
    left: Left,
}

const fn left(public_key: bool, config: bool, rekeyed: bool, pinned: bool) -> Left {
    Left {
        public_key,
        config,
        rekeyed,
        pinned,
        journal: true,
    }
}

const KILL_POINTS: &[KillPoint] = &[
    KillPoint {
        inject: "/^rename:when=2",
        path: None,
        between: "the journal and the public key",
        left: left(false, false, false, false),
    },
    KillPoint {
        inject: "/^rename:when=3",
        path: None,
        between: "the public key and the .sops.yaml edit",
        left: left(true, false, false, false),
    },
    KillPoint {
        inject: "/^rename:when=4",
        path: None,
        between: "the .sops.yaml edit and the re-key",
        left: left(true, true, false, false),
    },
    KillPoint {
        inject: "/^rename:when=5",
        path: None,
        between: "the re-key and the pin",
        left: left(true, true, true, false),
    },
    KillPoint {
        inject: "/^unlink",
        path: Some(".git/hostage/rekey-journal.jsonl"),
        between: "the pin and the journal's removal",
        left: left(true, true, true, true),
    },
];

/// A world about to run the workflow under test, and what the run must do.
struct Run {
    w: World,
    /// The workflow's arguments (the world's SSH options are added).
    args: Vec<String>,
    /// The key name (in `w.repo.keys`) of h1's key once the run is done.
    key: &'static str,
    /// The fingerprint the run pins.
    fingerprint: String,
    /// The exposure line the run prints (and the re-run of a killed run must print).
    exposure: &'static str,
}

/// Onboarding h1 (not an infrastructure host): its files leave the shared key.
fn onboarding() -> Run {
    let w = world();
    let fingerprint = w.fleet.hosts[1].fingerprint();
    Run {
        w,
        args: vec!["onboard".into(), "h1".into(), "--trust-new".into()],
        key: "h1",
        fingerprint,
        exposure: "exposure: infrastructure is taken off 1 file(s) it could read (data keys rotated): secrets/hosts/h1/api.json",
    }
}

/// Rotating h1, onboarded, then rebuilt as a new machine with a new host key.
fn rotation() -> Run {
    let mut w = world();
    let out = w.hostage(&["onboard", "h1", "--trust-new"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let index = w.fleet.add(SshdOptions::default());
    let (old_host, new_host) = (&w.fleet.hosts[1], &w.fleet.hosts[index]);
    let text = w
        .inventory_text()
        .replace(
            &format!(
                "address: {}\n    port: {}\n",
                old_host.address, old_host.port
            ),
            &format!(
                "address: {}\n    port: {}\n",
                new_host.address, new_host.port
            ),
        )
        .replace(
            &old_host.public_key_file().display().to_string(),
            &new_host.public_key_file().display().to_string(),
        );
    fs_err::write(&w.inventory, text).unwrap();
    let new_key = key_of_ssh(&new_host.host_key.as_ref().unwrap().private);
    let fingerprint = new_host.fingerprint();
    w.repo.keys.insert("h1-new".into(), new_key);
    Run {
        w,
        args: vec![
            "rotate".into(),
            "h1".into(),
            "--expect-fingerprint".into(),
            fingerprint.clone(),
        ],
        key: "h1-new",
        fingerprint,
        exposure: "exposure: h1's old key is taken off 1 file(s) it could read (data keys rotated): secrets/hosts/h1/api.json",
    }
}

impl Run {
    /// The arguments after `hostage`: the inventory, the workflow's, the world's SSH options.
    fn argv(&self) -> Vec<String> {
        self.argv_with(&[], &[])
    }

    /// [`Run::argv`] with `global` options first and `more` after the workflow's.
    fn argv_with(&self, global: &[&str], more: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = global.iter().map(|a| (*a).to_owned()).collect();
        all.extend([
            "--inventory".to_owned(),
            self.w.inventory.display().to_string(),
        ]);
        all.extend(self.args.iter().cloned());
        all.extend(more.iter().map(|a| (*a).to_owned()));
        all.extend([
            "--ssh-config".to_owned(),
            self.w.fleet.ssh_config().display().to_string(),
            "--known-hosts".to_owned(),
            self.w.fleet.known_hosts().display().to_string(),
        ]);
        all
    }

    fn run(&self) -> std::process::Output {
        let argv = self.argv();
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.w.repo.hostage(&refs, &["workstation"])
    }

    /// `--json … --dry-run`: the plan, as a document.
    fn dry_run(&self) -> serde_json::Value {
        let argv = self.argv_with(&["--json"], &["--dry-run"]);
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = self.w.repo.hostage(&refs, &["workstation"]);
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        crate::rekey_support::json(&out)
    }

    /// Runs the workflow under strace, killed at `point`.
    fn killed(&self, strace: &std::path::Path, point: &KillPoint) -> std::process::Output {
        // Without -f: only the main thread is traced (and counted), not git's or ssh's.
        let mut wrapper: Vec<std::ffi::OsString> =
            vec![strace.into(), "-qq".into(), "-o".into(), "/dev/null".into()];
        if let Some(path) = point.path {
            wrapper.extend(["-P".into(), self.w.repo.path(path).into()]);
        }
        wrapper.extend([
            "-e".into(),
            format!("inject={}:signal=KILL", point.inject).into(),
        ]);
        let argv = self.argv();
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        self.w
            .repo
            .hostage_wrapped(&wrapper, &refs, &["workstation"])
    }

    fn journal(&self) -> std::path::PathBuf {
        hostage_rekey::state_dir(self.w.repo.dir.path()).join("rekey-journal.jsonl")
    }

    /// What the run has written so far, compared with `before` (the repo's files).
    fn left(&self, before: &std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>) -> Left {
        let changed = |rel: &str| {
            before.get(std::path::Path::new(rel))
                != fs_err::read(self.w.repo.path(rel)).ok().as_ref()
        };
        Left {
            public_key: changed("pubkeys/h1.pub"),
            config: changed(".sops.yaml"),
            rekeyed: changed(API),
            pinned: self
                .w
                .inventory_text()
                .contains(&format!("fingerprint: {}", self.fingerprint)),
            journal: self.journal().exists(),
        }
    }

    /// `.sops.yaml` with every recipient replaced by its key's name, to compare across worlds.
    fn config_by_names(&self) -> String {
        let mut text = fs_err::read_to_string(self.w.repo.path(".sops.yaml")).unwrap();
        for (name, key) in &self.w.repo.keys {
            text = text.replace(&key.recipient, &format!("<{name}>"));
        }
        text
    }

    /// The run is done: h1's key opens exactly h1's files, the old ones none, the workstation
    /// every file, each with the recipients its rule gives; the pin is recorded; no journal.
    fn done(&self, between: &str) {
        for file in FILES {
            let mine = file.contains("/h1/");
            assert_eq!(
                self.w.repo.decrypt(file, self.key).is_some(),
                mine,
                "{between}: {} and {file}",
                self.key
            );
            if self.key != "h1" {
                assert!(
                    self.w.repo.decrypt(file, "h1").is_none(),
                    "{between}: the old key still opens {file}"
                );
            }
            assert!(
                self.w.repo.decrypt(file, "workstation").is_some(),
                "{between}: {file}"
            );
            assert!(
                self.w.repo.sops_says_up_to_date(file, "workstation"),
                "{between}: {file}"
            );
        }
        assert!(
            self.w
                .inventory_text()
                .contains(&format!("fingerprint: {}", self.fingerprint)),
            "{between}: the pin"
        );
        assert!(
            !self.journal().exists(),
            "{between}: the journal outlived the run that finished it"
        );
    }
}

/// Kills the workflow `setup` prepares at each point, then checks that the next run finishes
/// it as an uninterrupted run does, that a third changes nothing and that `hostage rekey`
/// afterwards has no interrupted run to finish.
fn each_kill_is_finished_by_the_next_run(setup: fn() -> Run) {
    let strace = hostage_tests::require(hostage_tests::STRACE);
    let uninterrupted = {
        let run = setup();
        let out = run.run();
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        assert!(stdout(&out).contains(run.exposure), "{}", stdout(&out));
        run.done("uninterrupted");
        let files: Vec<_> = run.w.repo.snapshot().into_keys().collect();
        (files, run.config_by_names())
    };
    for point in KILL_POINTS {
        let between = point.between;
        let run = setup();
        let before = run.w.repo.snapshot();
        let out = run.killed(&strace, point);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{between}: the run was not killed\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert_eq!(
            run.left(&before),
            point.left,
            "{between}: what the killed run left"
        );
        for file in FILES {
            assert!(
                run.w.repo.decrypt(file, "workstation").is_some(),
                "{between}: {file} is torn"
            );
        }
        // The plan shows the killed run's finish, last, and the exposure it owes; writes nothing.
        let killed = run.w.state();
        let plan = run.dry_run();
        let steps = plan["steps"].as_array().unwrap();
        assert_eq!(
            steps.last().unwrap()["step"],
            "finish-interrupted-run",
            "{between}: {plan:#}"
        );
        assert!(
            plan["exposure"].to_string().contains(API),
            "{between}: {plan:#}"
        );
        assert_eq!(run.w.state(), killed, "{between}: the dry run wrote");
        assert!(
            run.journal().exists(),
            "{between}: the dry run removed the journal"
        );

        let out = run.run();
        assert!(
            out.status.success(),
            "{between}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        // The exposure report is not lost with the killed run.
        assert!(
            stdout(&out).contains(run.exposure),
            "{between}: {}",
            stdout(&out)
        );
        run.done(between);
        let files: Vec<_> = run.w.repo.snapshot().into_keys().collect();
        assert_eq!(files, uninterrupted.0, "{between}");
        assert_eq!(run.config_by_names(), uninterrupted.1, "{between}");

        // A third run changes nothing, and neither does `rekey`, which finds no interrupted run.
        let after = run.w.state();
        let out = run.run();
        assert!(out.status.success(), "{between}: {}", stderr(&out));
        assert!(
            !stdout(&out).contains("exposure"),
            "{between}: a finished run's exposure reported again: {}",
            stdout(&out)
        );
        assert_eq!(run.w.state(), after, "{between}");
        let out = run.w.repo.hostage(&["rekey"], &["workstation"]);
        assert!(
            out.status.success(),
            "{between}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!said.contains("interrupted"), "{between}: {said}");
        assert_eq!(run.w.state(), after, "{between}");
    }
}

#[test]
fn an_onboarding_sigkilled_between_any_two_writes_is_finished_by_the_next_run() {
    each_kill_is_finished_by_the_next_run(onboarding);
}

#[test]
fn a_rotation_sigkilled_between_any_two_writes_is_finished_by_the_next_run() {
    each_kill_is_finished_by_the_next_run(rotation);
}

/// `rotate-infra` killed as it removes a phase's re-key journal (`when`: 1 for phase 1's, 2 for
/// phase 3's): the next run completes the rotation, prints the exposure report phase 3 owes,
/// and leaves no journal for a later `hostage rekey` to "finish".
#[test]
fn a_rotate_infra_sigkilled_before_removing_a_phase_journal_is_finished_by_the_next_run() {
    let strace = hostage_tests::require(hostage_tests::STRACE);
    for (when, phase) in [(1, "phase 1"), (2, "phase 3")] {
        let w = crate::workflow_support::world_with(&[true, false]);
        let out = w.hostage(&["fetch", "--all", "--trust-new"]);
        assert!(out.status.success(), "{}", stdout(&out));
        let new = hostage_tests::SshKeyPair::generate(
            w.fleet.dir.path(),
            "id_infrastructure.new",
            "",
            None,
        );
        let new_key = new.private.display().to_string();
        let inventory = w.inventory.display().to_string();
        let ssh_config = w.fleet.ssh_config().display().to_string();
        let args = [
            "--inventory",
            &inventory,
            "rotate-infra",
            "--new-key",
            &new_key,
            "--ssh-config",
            &ssh_config,
        ];
        let journal = hostage_rekey::state_dir(w.repo.dir.path()).join("rekey-journal.jsonl");
        // Without -f: only the main thread is traced, not ssh's or git's processes.
        let wrapper: Vec<std::ffi::OsString> = vec![
            strace.clone().into(),
            "-qq".into(),
            "-o".into(),
            "/dev/null".into(),
            "-P".into(),
            journal.clone().into(),
            "-e".into(),
            format!("inject=/^unlink:when={when}:signal=KILL").into(),
        ];
        let out = w.repo.hostage_wrapped(&wrapper, &args, &["workstation"]);
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{phase}: the run was not killed\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(journal.exists(), "{phase}: the killed run left no journal");

        let out = w.repo.hostage(&args, &["workstation"]);
        assert!(
            out.status.success(),
            "{phase}: {}\n{}",
            stdout(&out),
            stderr(&out)
        );
        assert!(
            stdout(&out).contains("exposure: the old infrastructure key is taken off 4 file(s)"),
            "{phase}: {}",
            stdout(&out)
        );
        assert!(
            !journal.exists(),
            "{phase}: the journal outlived the rotation"
        );
        assert!(
            !w.inventory_text()
                .contains(w.repo.recipient("infrastructure")),
            "{phase}: the inventory still names the old key"
        );
        for file in FILES.iter().filter(|f| !f.contains("workstation-only")) {
            assert!(
                w.repo.decrypt(file, "infrastructure").is_none(),
                "{phase}: {file}"
            );
            assert!(
                w.repo.sops_says_up_to_date(file, "workstation"),
                "{phase}: {file}"
            );
        }
        let after = w.state();
        let out = w.repo.hostage(&["rekey"], &["workstation"]);
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(out.status.success(), "{phase}: {said}");
        assert!(!said.contains("interrupted"), "{phase}: {said}");
        assert_eq!(w.state(), after, "{phase}");
    }
}

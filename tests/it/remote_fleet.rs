//! Fleet mechanics: bounded concurrency, no stray ssh masters, even after Ctrl-C.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::time::{Duration, Instant};

use hostage_tests::sshd::{ssh_processes_mentioning, SshdFleet};

use crate::remote_common::{
    assert_no_stray_ssh, command, hostage, key_paths, specs, tmp_dir, Report,
};

#[test]
fn one_job_at_a_time_still_does_every_host() {
    let fleet = SshdFleet::start(3);
    fleet.trust_all_in_known_hosts();
    let mut args = specs(&fleet);
    args.extend(key_paths(&fleet));
    args.extend(["--jobs".to_owned(), "1".to_owned()]);
    let report = Report::of(&hostage(&fleet, "fetch", &args));
    assert_eq!(report.code, 0, "{}", report.text);
    assert_eq!(report.summary["ok"], 3);
    assert_no_stray_ssh(&fleet);
}

#[test]
fn ctrl_c_during_a_run_leaves_no_ssh_master_behind() {
    let fleet = SshdFleet::start(2);
    fleet.trust_all_in_known_hosts();
    // Reading a FIFO nobody writes blocks: the run hangs on the hosts until interrupted.
    let fifo = make_fifo(&fleet);
    let mut args = specs(&fleet);
    args.extend(["--key-path".to_owned(), fifo.display().to_string()]);
    args.extend(["--timeout".to_owned(), "120".to_owned()]);
    let mut child = command(&fleet, "fetch", &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let needle = tmp_dir(&fleet).display().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while ssh_processes_mentioning(&needle).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the run never opened its masters"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended on its own"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let status = std::process::Command::new("kill")
        .arg("-INT")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "hostage did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        exit.code(),
        Some(130),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_no_stray_ssh(&fleet);
    release(&fifo);
}

fn make_fifo(fleet: &SshdFleet) -> std::path::PathBuf {
    let fifo = fleet.dir.path().join("blocking.pub");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo (coreutils) works");
    fifo
}

/// Unblocks remote `cat`s still waiting on the FIFO (O_NONBLOCK: never hangs here).
fn release(fifo: &std::path::Path) {
    if let Ok(mut writer) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(0o4000)
        .open(fifo)
    {
        let _ = writer.write_all(b"\n");
    }
}

#[test]
fn jobs_bound_the_open_connections_and_timeouts_close_them() {
    let fleet = SshdFleet::start(5);
    fleet.trust_all_in_known_hosts();
    let fifo = make_fifo(&fleet);
    let mut args = specs(&fleet);
    args.extend(["--key-path".to_owned(), fifo.display().to_string()]);
    args.extend(["--jobs", "2", "--timeout", "3"].map(str::to_owned));
    let mut child = command(&fleet, "fetch", &args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    let _ = status;
    let report = Report::of(&child.wait_with_output().unwrap());
    release(&fifo);
    assert_eq!(report.code, 1, "{}", report.text);
    for host in &fleet.hosts {
        assert_eq!(report.error_kind(&host.spec()).as_deref(), Some("timeout"));
    }
    // Every host hangs until its 3 s timeout: 5 hosts, 2 at a time, take 3 waves (≥ 9 s);
    // without the bound they would all time out together after 3 s.
    assert!(
        elapsed >= Duration::from_millis(8500),
        "took only {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
    assert_no_stray_ssh(&fleet);
}

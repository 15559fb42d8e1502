//! `cargo xtask bench fleet`: verified fetch from 32 loopback sshd hosts by `hostage fetch`,
//! side by side with `ssh-keyscan` of the same hosts (unauthenticated, TOFU) and a shell loop of
//! `ssh host cat …pub` (authenticated, one host after the other).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hostage_tests::sshd::SshdFleet;

/// Hosts in the benchmark fleet.
const HOSTS: usize = 32;
/// Timed runs per contender (the median is reported).
const RUNS: usize = 5;

/// Runs the fleet benchmark and prints a Markdown table for `docs/benchmarks.md`.
pub fn fleet(workspace: &Path) -> anyhow::Result<()> {
    println!("$ cargo build --release --package hostage");
    duct::cmd!(
        "cargo",
        "build",
        "--release",
        "--quiet",
        "--package",
        "hostage"
    )
    .dir(workspace)
    .run()
    .context("building hostage (release)")?;
    let hostage = workspace.join("target/release/hostage");

    println!("starting {HOSTS} sshd hosts on 127.0.0.x …");
    let fleet = SshdFleet::start_on_one_port(HOSTS);
    fleet.trust_all_in_known_hosts();
    let config = fleet.ssh_config();
    let port = fleet.hosts[0].port.to_string();
    let addresses: Vec<String> = fleet.hosts.iter().map(|h| h.address.to_string()).collect();

    let keyscan = || -> anyhow::Result<()> {
        let mut args = vec!["-T".to_owned(), "10".into(), "-t".into(), "ed25519".into()];
        args.extend(["-p".to_owned(), port.clone()]);
        args.extend(addresses.iter().cloned());
        let out = duct::cmd("ssh-keyscan", &args).stderr_null().read()?;
        expect_lines(&out, HOSTS, "ssh-keyscan")
    };
    let shell_loop = || -> anyhow::Result<()> {
        let mut script = String::new();
        for host in &fleet.hosts {
            script.push_str(&format!(
                "ssh -F '{}' -p {} root@{} cat '{}'\n",
                config.display(),
                host.port,
                host.address,
                host.public_key_file().display()
            ));
        }
        let out = duct::cmd!("sh", "-c", script).read()?;
        expect_lines(&out, HOSTS, "the ssh loop")
    };
    let fetch = |jobs: usize| {
        let hostage = hostage.clone();
        let fleet = &fleet;
        let config = config.clone();
        move || -> anyhow::Result<()> {
            let tmp = tempfile::tempdir()?;
            let mut args: Vec<String> = vec![
                "--json".into(),
                "fetch".into(),
                "--ssh-config".into(),
                config.display().to_string(),
                "--known-hosts".into(),
                fleet.known_hosts().display().to_string(),
                "--pins".into(),
                tmp.path().join("pins").display().to_string(),
                "--jobs".into(),
                jobs.to_string(),
            ];
            for host in &fleet.hosts {
                args.push(host.spec());
                args.push("--key-path-for".into());
                args.push(format!(
                    "{}={}",
                    host.spec(),
                    host.public_key_file().display()
                ));
            }
            let out = duct::cmd(&hostage, &args).read()?;
            // one line per host plus the summary
            expect_lines(&out, HOSTS + 1, "hostage fetch")?;
            if !out.contains(&format!("\"ok\":{HOSTS}")) {
                bail!("hostage fetch did not verify every host:\n{out}");
            }
            Ok(())
        }
    };

    println!("timing {RUNS} runs each (median, min) …");
    let keyscan_t = time(RUNS, keyscan)?;
    let loop_t = time(RUNS, shell_loop)?;
    let fetch16 = time(RUNS, fetch(16))?;
    let fetch32 = time(RUNS, fetch(32))?;
    let ratio = |t: (Duration, Duration)| t.0.as_secs_f64() / keyscan_t.0.as_secs_f64();
    println!();
    println!("| {HOSTS} loopback sshd hosts | verifies? | median | min | vs ssh-keyscan |");
    println!("|---|---|---|---|---|");
    let row = |name: &str, verifies: &str, t: (Duration, Duration)| {
        println!(
            "| {name} | {verifies} | {:.2} s | {:.2} s | {:.1}× |",
            t.0.as_secs_f64(),
            t.1.as_secs_f64(),
            ratio(t)
        );
    };
    row(
        "`ssh-keyscan -t ed25519` (one call, all hosts)",
        "no (TOFU)",
        keyscan_t,
    );
    row(
        "shell loop `ssh host cat …pub`",
        "known_hosts, no key-file check",
        loop_t,
    );
    row(
        "`hostage fetch --jobs 16` (default)",
        "known_hosts + handshake = key file",
        fetch16,
    );
    row(
        "`hostage fetch --jobs 32`",
        "known_hosts + handshake = key file",
        fetch32,
    );
    Ok(())
}

fn expect_lines(output: &str, count: usize, what: &str) -> anyhow::Result<()> {
    let lines = output
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    if lines != count {
        bail!("{what} printed {lines} lines, expected {count}:\n{output}");
    }
    Ok(())
}

/// Runs `job` once to warm up, then `runs` times; returns (median, min).
fn time(runs: usize, job: impl Fn() -> anyhow::Result<()>) -> anyhow::Result<(Duration, Duration)> {
    job()?;
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        job()?;
        times.push(start.elapsed());
    }
    times.sort();
    Ok((times[times.len() / 2], times[0]))
}

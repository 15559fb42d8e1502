//! `cargo xtask bench rekey`: the re-key benchmark of docs/benchmarks.md (`## Re-key`).
//!
//! Sops-made YAML files (20 values, recipients A, B, C) and two hand edits of `.sops.yaml`:
//! **add** (D joins: every file is re-wrapped, same data key) and **remove** (C leaves: every
//! file's data key is rotated, the default on removal). For each, on fresh copies:
//! `hostage rekey --check`, `hostage rekey` and one batched `sops updatekeys -y f1 … fN` call
//! (what `find … | xargs sops updatekeys -y` does), each timed as a process by GNU `time` (wall,
//! user+system CPU, max RSS). Side by side with them, the X25519 floor measured in this process:
//! what the age stanza operations a file needs (one unwrap, one wrap per new stanza) cost on one
//! core, so "CPU per file" can be read against the work no implementation can skip. The load
//! average is recorded with every figure (the machine is shared). Fixtures live under
//! `target/bench/rekey/`, never in the repository.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bench::{config, fixtures, keys, sops_cmd, threads, Keys};
use anyhow::{bail, Context as _};

const UNIQUE: usize = 1000;
const PER_DIR: usize = 1000;

fn name(i: usize) -> String {
    format!("d{:02}/f{:04}.yaml", i / PER_DIR, i % PER_DIR)
}

/// The hand edit of `.sops.yaml` a run answers (the fixtures are made for A, B, C).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    /// D joins: a re-wrap of every file (one unwrap, one new stanza each).
    Add,
    /// C leaves: a rotation of every file (one unwrap, a new stanza for A and for B).
    Remove,
}

impl Change {
    fn label(self) -> &'static str {
        match self {
            Self::Add => "add D",
            Self::Remove => "remove C",
        }
    }

    /// Indices (into the benchmark's keys) of the recipients the edited config names.
    fn wanted(self) -> &'static [usize] {
        match self {
            Self::Add => &[0, 1, 2, 3],
            Self::Remove => &[0, 1],
        }
    }

    /// Indices of the recipients the files must not have afterwards.
    fn gone(self) -> &'static [usize] {
        match self {
            Self::Add => &[],
            Self::Remove => &[2],
        }
    }

    fn recipients(self, keys: &Keys) -> Vec<String> {
        self.wanted()
            .iter()
            .map(|&i| keys.recipients[i].clone())
            .collect()
    }

    /// age stanzas written per file: the new one (add), or one per remaining recipient (remove).
    fn wraps(self) -> u32 {
        match self {
            Self::Add => 1,
            Self::Remove => 2,
        }
    }
}

/// A fresh copy of `count` files (the unique ones repeated) with the edited `.sops.yaml`.
fn workdir(
    dir: &Path,
    label: &str,
    pristine: &Path,
    count: usize,
    keys: &Keys,
    change: Change,
) -> anyhow::Result<PathBuf> {
    let work = dir.join(format!("{label}-{count}"));
    if work.exists() {
        fs_err::remove_dir_all(&work)?;
    }
    for i in 0..count {
        let target = work.join(name(i));
        if i % PER_DIR == 0 {
            fs_err::create_dir_all(target.parent().context("a file has a directory")?)?;
        }
        fs_err::copy(pristine.join(format!("f{:04}.yaml", i % UNIQUE)), target)?;
    }
    hostage_atomic::write(
        &work.join(".sops.yaml"),
        config(&change.recipients(keys)).as_bytes(),
    )?;
    // Its own repository, as a secrets repo is (target/ is ignored by the workspace's git).
    duct::cmd!("git", "init", "-q", &work).run()?;
    duct::cmd!("sync").run()?;
    Ok(work)
}

/// What GNU `time` says about one command: wall time, CPU time (user + system), peak memory.
#[derive(Clone, Copy, Default)]
struct Measured {
    wall: Duration,
    cpu: Option<Duration>,
    rss_kib: Option<u64>,
}

/// Runs one command and measures it (CPU and memory only when GNU `time` is installed).
fn measure(expression: duct::Expression) -> anyhow::Result<Measured> {
    let report = std::env::temp_dir().join(format!("hostage-bench-time-{}", std::process::id()));
    let start = Instant::now();
    expression.stdout_null().stderr_null().run()?;
    let wall = start.elapsed();
    let text = fs_err::read_to_string(&report).unwrap_or_default();
    let _ = fs_err::remove_file(&report);
    let fields: Vec<&str> = text
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let seconds = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    Ok(Measured {
        wall,
        cpu: seconds(1)
            .zip(seconds(2))
            .map(|(u, s)| Duration::from_secs_f64(u + s)),
        rss_kib: fields.first().and_then(|f| f.parse().ok()),
    })
}

/// Wraps `program args` in GNU `time -f %M -o REPORT` when it is installed.
fn timed(program: &Path, args: Vec<String>) -> duct::Expression {
    let report = std::env::temp_dir().join(format!("hostage-bench-time-{}", std::process::id()));
    if Path::new("/usr/bin/time").exists() {
        let mut all = vec![
            "-f".to_owned(),
            "%M %U %S".to_owned(),
            "-o".to_owned(),
            report.display().to_string(),
        ];
        all.push(program.display().to_string());
        all.extend(args);
        duct::cmd("/usr/bin/time", all)
    } else {
        duct::cmd(program, args)
    }
}

fn check(
    sops: &Path,
    hostage: &Path,
    work: &Path,
    count: usize,
    keys: &Keys,
    change: Change,
) -> anyhow::Result<()> {
    let last = change.wanted()[change.wanted().len() - 1];
    for i in [0, count / 2, count - 1] {
        let file = name(i);
        let text = fs_err::read_to_string(work.join(&file))?;
        let lacks = change
            .wanted()
            .iter()
            .any(|&k| !text.contains(&keys.recipients[k]));
        let keeps = change
            .gone()
            .iter()
            .any(|&k| text.contains(&keys.recipients[k]));
        if lacks || keeps {
            bail!(
                "{file} in {} does not have the new recipients",
                work.display()
            );
        }
        sops_cmd(
            sops,
            work,
            &keys.secrets[last],
            vec!["decrypt".into(), file.clone()],
        )
        .stdout_null()
        .run()
        .with_context(|| format!("sops cannot decrypt {file} with a wanted key"))?;
    }
    let check = duct::cmd!(hostage, "rekey", "--check")
        .dir(work)
        .stdout_null()
        .stderr_null()
        .unchecked()
        .run()?;
    if !check.status.success() {
        bail!(
            "`hostage rekey --check` still finds drift in {}",
            work.display()
        );
    }
    Ok(())
}

/// The 1-minute load average now.
fn load() -> f64 {
    fs_err::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().and_then(|f| f.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// One measured run and the load average just before it.
#[derive(Clone, Copy)]
struct Run {
    measured: Measured,
    load: f64,
}

/// What one (file count, change) pair measured.
struct Row {
    count: usize,
    change: Change,
    check: Run,
    hostage: Run,
    sops: Run,
}

fn run_hostage(hostage: &Path, work: &Path, keys: &Keys, extra: &[&str]) -> anyhow::Result<Run> {
    let mut args = vec!["rekey".to_owned()];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let load = load();
    let measured = measure(
        timed(hostage, args)
            .dir(work)
            .env("SOPS_AGE_KEY", &keys.secrets[0])
            .unchecked(),
    )?;
    Ok(Run { measured, load })
}

/// `hostage rekey --check` then `hostage rekey` on fresh copies (median by CPU of 3 runs up to
/// 1,000 files, else one).
fn hostage_runs(
    sops: &Path,
    hostage: &Path,
    dir: &Path,
    pristine: &Path,
    count: usize,
    keys: &Keys,
    change: Change,
) -> anyhow::Result<(Run, Run)> {
    let runs = if count <= 1000 { 3 } else { 1 };
    let (mut checks, mut applies) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        let work = workdir(dir, "hostage", pristine, count, keys, change)?;
        println!(
            "$ hostage rekey --check; hostage rekey ({count} files, {})",
            change.label()
        );
        checks.push(run_hostage(hostage, &work, keys, &["--check"])?);
        applies.push(run_hostage(hostage, &work, keys, &[])?);
        check(sops, hostage, &work, count, keys, change)?;
    }
    let median = |mut runs: Vec<Run>| {
        runs.sort_by_key(|r| r.measured.cpu.unwrap_or(r.measured.wall));
        runs[runs.len() / 2]
    };
    Ok((median(checks), median(applies)))
}

fn sops_updatekeys(
    sops: &Path,
    work: &Path,
    secret: &str,
    files: Vec<String>,
) -> anyhow::Result<Run> {
    let mut args = vec!["updatekeys".to_owned(), "-y".to_owned()];
    args.extend(files);
    let load = load();
    let measured = measure(
        timed(sops, args)
            .dir(work)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY", secret),
    )?;
    Ok(Run { measured, load })
}

/// The X25519 floor, measured in this process on one core: a variable-base scalar
/// multiplication (the Diffie-Hellman of an unwrap or a wrap) and a fixed-base one (a wrap's
/// ephemeral public key), as x25519-dalek computes them for age. Unwrapping a file's data key
/// costs one variable-base multiplication; each new stanza one of each. Returned as
/// `(unwrap, wrap)`.
fn x25519_floor() -> (Duration, Duration) {
    use curve25519_dalek::{EdwardsPoint, MontgomeryPoint};
    const ROUNDS: u32 = 4000;
    let mut scalar = [0x5a_u8; 32];
    let mut point = MontgomeryPoint([9; 32]);
    let time = |f: &mut dyn FnMut()| {
        for _ in 0..200 {
            f();
        }
        let start = Instant::now();
        for _ in 0..ROUNDS {
            f();
        }
        start.elapsed() / ROUNDS
    };
    let variable = time(&mut || {
        point = std::hint::black_box(point.mul_clamped(scalar));
        scalar[0] = scalar[0].wrapping_add(1);
    });
    let fixed = time(&mut || {
        std::hint::black_box(EdwardsPoint::mul_base_clamped(scalar).to_montgomery());
        scalar[1] = scalar[1].wrapping_add(1);
    });
    (variable, fixed + variable)
}

/// Runs the re-key benchmark for each of `counts` (add and remove) and prints the table for
/// docs/benchmarks.md, then peak memory at 5x the largest count.
pub(crate) fn rekey(
    sops: &Path,
    hostage: &Path,
    dir: &Path,
    counts: &[usize],
) -> anyhow::Result<()> {
    fs_err::create_dir_all(dir)?;
    let keys = keys(dir)?;
    // The re-wrap benchmark's fixtures: `UNIQUE` files for A, B, C in `dir/pristine`.
    fixtures(sops, dir, &keys, UNIQUE)?;
    let pristine = dir.join("pristine");
    let mut rows = Vec::new();
    for &count in counts {
        if count < 3 {
            bail!("the benchmark needs at least 3 files");
        }
        for change in [Change::Add, Change::Remove] {
            let (check_run, hostage_run) =
                hostage_runs(sops, hostage, dir, &pristine, count, &keys, change)?;
            let work = workdir(dir, "sops-batch", &pristine, count, &keys, change)?;
            println!(
                "$ sops updatekeys -y d00/f0000.yaml … ({count} files, one call, {})",
                change.label()
            );
            let sops_run = sops_updatekeys(
                sops,
                &work,
                &keys.secrets[0],
                (0..count).map(name).collect(),
            )?;
            check(sops, hostage, &work, count, &keys, change)?;
            fs_err::remove_dir_all(&work)?;
            rows.push(Row {
                count,
                change,
                check: check_run,
                hostage: hostage_run,
                sops: sops_run,
            });
        }
    }
    let (unwrap, wrap) = x25519_floor();
    let scaling = match counts.iter().max() {
        Some(largest) => Some(memory_scaling(
            sops,
            hostage,
            dir,
            &pristine,
            &keys,
            largest * 5,
        )?),
        None => None,
    };
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mib = |m: &Measured| {
        m.rss_kib
            .map_or("n/a (install Debian `time`)".to_owned(), |k| {
                format!("{:.1} MiB", k as f64 / 1024.0)
            })
    };
    let per_file = |m: &Measured, count: usize| {
        m.cpu.map_or("n/a".to_owned(), |c| {
            format!("{:.3} ms", ms(c) / count as f64)
        })
    };
    println!();
    println!(
        "X25519 floor (this process, one core; load {:.2}): unwrap {:.1} µs, wrap {:.1} µs; per file: add {:.3} ms, remove {:.3} ms",
        load(),
        us(unwrap),
        us(wrap),
        ms(unwrap + wrap),
        ms(unwrap + wrap * Change::Remove.wraps()),
    );
    println!(
        "re-key: sops-made YAML files (20 values, recipients A, B, C), `.sops.yaml` edited; {} threads; CPU = user+sys of the whole process",
        threads()
    );
    println!("| files | change | `hostage rekey` CPU per file | X25519 floor per file | CPU / floor | `rekey --check` CPU per file | `hostage rekey` wall | batched `sops updatekeys` wall | sops wall / hostage wall | peak memory hostage / sops | load (1 min) hostage / sops |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        let floor = unwrap + wrap * row.change.wraps();
        let ratio = row.hostage.measured.cpu.map_or("n/a".to_owned(), |c| {
            format!(
                "{:.1}×",
                c.as_secs_f64() / row.count as f64 / floor.as_secs_f64()
            )
        });
        println!(
            "| {} | {} | {} | {:.3} ms | {ratio} | {} | {:.0} ms | {:.0} ms | **{:.1}×** | {} / {} | {:.2} / {:.2} |",
            row.count,
            row.change.label(),
            per_file(&row.hostage.measured, row.count),
            ms(floor),
            per_file(&row.check.measured, row.count),
            ms(row.hostage.measured.wall),
            ms(row.sops.measured.wall),
            row.sops.measured.wall.as_secs_f64() / row.hostage.measured.wall.as_secs_f64(),
            mib(&row.hostage.measured),
            mib(&row.sops.measured),
            row.hostage.load,
            row.sops.load,
        );
    }
    if let Some((count, check_run, apply_run)) = scaling {
        println!();
        println!(
            "peak memory at {count} files (remove C, one run): `rekey --check` {} ({:.0} ms wall), `rekey` {} ({:.0} ms wall, {} CPU per file; load {:.2})",
            mib(&check_run.measured),
            ms(check_run.measured.wall),
            mib(&apply_run.measured),
            ms(apply_run.measured.wall),
            per_file(&apply_run.measured, count),
            apply_run.load,
        );
    }
    Ok(())
}

/// `hostage rekey --check` then `hostage rekey` once on `count` files (memory must stay flat as
/// the repo grows).
fn memory_scaling(
    sops: &Path,
    hostage: &Path,
    dir: &Path,
    pristine: &Path,
    keys: &Keys,
    count: usize,
) -> anyhow::Result<(usize, Run, Run)> {
    let work = workdir(dir, "hostage-memory", pristine, count, keys, Change::Remove)?;
    println!("$ hostage rekey --check; hostage rekey ({count} files)");
    let check_run = run_hostage(hostage, &work, keys, &["--check"])?;
    let apply_run = run_hostage(hostage, &work, keys, &[])?;
    check(sops, hostage, &work, count, keys, Change::Remove)?;
    fs_err::remove_dir_all(&work)?;
    Ok((count, check_run, apply_run))
}

//! `cargo xtask bench`: the re-key benchmark of docs/benchmarks.md (`## Re-key`).
//!
//! Sops-made YAML files (20 values, recipients A, B, C) and a hand edit of `.sops.yaml`: C leaves,
//! D joins. Then, each on a fresh copy: `hostage rekey` (rotates the data key of every file, the
//! default on removal), `hostage rekey --no-rotate` (the same work as sops), one batched
//! `sops updatekeys -y f1 … fN` call (what `find … | xargs sops updatekeys -y` does), and a
//! per-file `sops updatekeys -y f` loop (only up to 1,000 files: it takes minutes). Wall time and
//! peak memory (max RSS, from GNU `time`) of each; the release `hostage` binary is used.
//! Fixtures live under `target/bench/rekey/`, never in the repository.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bench::{config, fixtures, keys, sops_cmd, threads, Keys};
use anyhow::{bail, Context as _};

const UNIQUE: usize = 1000;
const PER_DIR: usize = 1000;

fn name(i: usize) -> String {
    format!("d{:02}/f{:04}.yaml", i / PER_DIR, i % PER_DIR)
}

/// A fresh copy of `count` files (the unique ones repeated) with the edited `.sops.yaml`.
fn workdir(
    dir: &Path,
    label: &str,
    pristine: &Path,
    count: usize,
    keys: &Keys,
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
    let abd = [
        keys.recipients[0].clone(),
        keys.recipients[1].clone(),
        keys.recipients[3].clone(),
    ];
    hostage_atomic::write(&work.join(".sops.yaml"), config(&abd).as_bytes())?;
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
) -> anyhow::Result<()> {
    for i in [0, count / 2, count - 1] {
        let file = name(i);
        let text = fs_err::read_to_string(work.join(&file))?;
        if !text.contains(&keys.recipients[3]) || text.contains(&keys.recipients[2]) {
            bail!(
                "{file} in {} does not have the new recipients",
                work.display()
            );
        }
        sops_cmd(
            sops,
            work,
            &keys.secrets[3],
            vec!["decrypt".into(), file.clone()],
        )
        .stdout_null()
        .run()
        .with_context(|| format!("sops cannot decrypt {file} with the new key"))?;
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

struct Row {
    label: String,
    measured: Measured,
}

#[allow(clippy::too_many_arguments)]
fn hostage_run(
    sops: &Path,
    hostage: &Path,
    dir: &Path,
    pristine: &Path,
    count: usize,
    keys: &Keys,
    extra: &[&str],
    label: &str,
) -> anyhow::Result<Row> {
    let runs = if count <= 1000 { 3 } else { 1 };
    let mut results = Vec::new();
    for _ in 0..runs {
        let work = workdir(dir, "hostage", pristine, count, keys)?;
        let mut args = vec!["rekey".to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        println!("$ hostage {} ({count} files)", args.join(" "));
        let measured = measure(
            timed(hostage, args)
                .dir(&work)
                .env("SOPS_AGE_KEY", &keys.secrets[0]),
        )?;
        check(sops, hostage, &work, count, keys)?;
        results.push(measured);
    }
    results.sort_by_key(|m| m.wall);
    Ok(Row {
        label: label.to_owned(),
        measured: results[results.len() / 2],
    })
}

fn sops_updatekeys(
    sops: &Path,
    work: &Path,
    secret: &str,
    files: Vec<String>,
) -> anyhow::Result<Measured> {
    let mut args = vec!["updatekeys".to_owned(), "-y".to_owned()];
    args.extend(files);
    measure(
        timed(sops, args)
            .dir(work)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env("SOPS_AGE_KEY", secret),
    )
}

/// Runs the re-key benchmark for each of `counts` and prints the tables for docs/benchmarks.md.
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
    let mut tables = Vec::new();
    for &count in counts {
        if count < 3 {
            bail!("the benchmark needs at least 3 files");
        }
        let mut rows = Vec::new();
        for (extra, label) in [
            (
                &[][..],
                "`hostage rekey` (rotates every data key: C was removed)",
            ),
            (
                &["--no-rotate"][..],
                "`hostage rekey --no-rotate` (same work as sops)",
            ),
        ] {
            rows.push(hostage_run(
                sops, hostage, dir, &pristine, count, &keys, extra, label,
            )?);
        }
        let work = workdir(dir, "sops-batch", &pristine, count, &keys)?;
        println!("$ sops updatekeys -y d00/f0000.yaml … ({count} files, one call)");
        let measured = sops_updatekeys(
            sops,
            &work,
            &keys.secrets[0],
            (0..count).map(name).collect(),
        )?;
        check(sops, hostage, &work, count, &keys)?;
        rows.push(Row {
            label: format!("`sops updatekeys -y f1 … f{count}` (one call, no fsync)"),
            measured,
        });
        if count <= 1000 {
            let work = workdir(dir, "sops-loop", &pristine, count, &keys)?;
            println!("$ for f in …; do sops updatekeys -y $f; done ({count} files)");
            let start = Instant::now();
            let mut total = Measured::default();
            for i in 0..count {
                let one = sops_updatekeys(sops, &work, &keys.secrets[0], vec![name(i)])?;
                total.cpu = match (total.cpu, one.cpu) {
                    (Some(a), Some(b)) => Some(a + b),
                    (None, b) if i == 0 => b,
                    _ => None,
                };
                total.rss_kib = total.rss_kib.max(one.rss_kib);
            }
            total.wall = start.elapsed();
            check(sops, hostage, &work, count, &keys)?;
            rows.push(Row {
                label: "`sops updatekeys -y f` per file (no fsync)".into(),
                measured: total,
            });
        }
        tables.push((count, rows));
    }
    let scaling = memory_scaling(sops, hostage, dir, &pristine, &keys, counts)?;
    let load = fs_err::read_to_string("/proc/loadavg").unwrap_or_default();
    println!();
    println!(
        "load average at the end (1, 5, 15 min): {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (count, rows) in tables {
        let base = rows[0].measured;
        println!();
        println!("re-key: {count} sops-made YAML files (20 values), `.sops.yaml` edited (C removed, D added), {} threads", threads());
        println!("| method | wall | per file | CPU (user+sys) | peak memory (max RSS) | wall vs `hostage rekey` | CPU vs `hostage rekey` |");
        println!("|---|---|---|---|---|---|---|");
        for row in rows {
            let m = row.measured;
            let ms = m.wall.as_secs_f64() * 1000.0;
            let cpu = m.cpu.map_or("n/a".to_owned(), |c| {
                format!("{:.0} ms", c.as_secs_f64() * 1000.0)
            });
            let rss = m
                .rss_kib
                .map_or("n/a (install Debian `time`)".to_owned(), |k| {
                    format!("{:.1} MiB", k as f64 / 1024.0)
                });
            let ratio = |a: f64, b: f64| {
                if (a / b - 1.0).abs() < 1e-9 {
                    "—".to_owned()
                } else {
                    format!("{:.2}×", a / b)
                }
            };
            let wall_ratio = ratio(m.wall.as_secs_f64(), base.wall.as_secs_f64());
            let cpu_ratio = match (m.cpu, base.cpu) {
                (Some(a), Some(b)) => ratio(a.as_secs_f64(), b.as_secs_f64()),
                _ => "n/a".to_owned(),
            };
            println!(
                "| {} | {ms:.0} ms | {:.3} ms | {cpu} | {rss} | {wall_ratio} | {cpu_ratio} |",
                row.label,
                ms / count as f64
            );
        }
    }
    println!();
    println!(
        "peak memory as the file count grows (`hostage rekey` rotating every file, one run each)"
    );
    println!("| files | `rekey --check` wall | `rekey --check` peak memory | `rekey` wall | `rekey` per file | `rekey` peak memory |");
    println!("|---|---|---|---|---|---|");
    for (count, check, apply) in scaling {
        let rss = |m: Measured| {
            m.rss_kib
                .map_or("n/a (install Debian `time`)".to_owned(), |k| {
                    format!("{:.1} MiB", k as f64 / 1024.0)
                })
        };
        println!(
            "| {count} | {:.0} ms | {} | {:.0} ms | {:.3} ms | {} |",
            check.wall.as_secs_f64() * 1000.0,
            rss(check),
            apply.wall.as_secs_f64() * 1000.0,
            apply.wall.as_secs_f64() * 1000.0 / count as f64,
            rss(apply)
        );
    }
    Ok(())
}

/// `hostage rekey --check` then `hostage rekey` at the given counts and at 5x the largest (the
/// issue's "memory must stay flat as the file count grows"): `(files, check, apply)` each.
fn memory_scaling(
    sops: &Path,
    hostage: &Path,
    dir: &Path,
    pristine: &Path,
    keys: &Keys,
    counts: &[usize],
) -> anyhow::Result<Vec<(usize, Measured, Measured)>> {
    let mut all: Vec<usize> = counts.to_vec();
    if let Some(largest) = counts.iter().max() {
        all.push(largest * 5);
    }
    let mut out = Vec::new();
    for count in all {
        let work = workdir(dir, "hostage-memory", pristine, count, keys)?;
        println!("$ hostage rekey --check; hostage rekey ({count} files)");
        let run = |extra: &[&str]| {
            let mut args = vec!["rekey".to_owned()];
            args.extend(extra.iter().map(|s| (*s).to_owned()));
            measure(
                timed(hostage, args)
                    .dir(&work)
                    .env("SOPS_AGE_KEY", &keys.secrets[0])
                    .unchecked(),
            )
        };
        let check_run = run(&["--check"])?;
        let apply_run = run(&[])?;
        check(sops, hostage, &work, count, keys)?;
        fs_err::remove_dir_all(&work)?;
        out.push((count, check_run, apply_run));
    }
    Ok(out)
}

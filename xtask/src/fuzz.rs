//! `cargo xtask fuzz [SECONDS] [TARGET…]`: runs the libFuzzer targets of `fuzz/` for SECONDS
//! each (default 60) and prints executions and crashes per target (docs/fuzzing.md).
//!
//! Only a stable toolchain is installed here, so there is no `cargo fuzz` (it wants nightly for
//! `-Zsanitizer`). libFuzzer itself needs no sanitizer: `libfuzzer-sys` builds it from source
//! (a C++ compiler, Debian `g++`), and the coverage it feeds on comes from LLVM's
//! SanitizerCoverage pass, which stable rustc runs with `-Cpasses=sancov-module` and
//! `-Cllvm-args`. What we lose is AddressSanitizer, which safe Rust does not need for memory
//! errors; panics, overflows (overflow checks are on), timeouts and out-of-memory are caught.
//!
//! `--target` is passed explicitly so the instrumentation flags reach the fuzzed crates but not
//! build scripts and proc macros (which would fail to link without libFuzzer).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

/// Every target in `fuzz/Cargo.toml`.
pub const TARGETS: &[&str] = &[
    "sops_file",
    "sops_config",
    "inventory",
    "ssh_key_lines",
    "known_hosts",
];

/// Seconds per target when none are given.
const DEFAULT_SECONDS: u64 = 60;

/// The coverage instrumentation `cargo fuzz` uses, without the sanitizer (stable rustc).
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
     -Cllvm-args=-sanitizer-coverage-level=4 \
     -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
     -Cllvm-args=-sanitizer-coverage-pc-table \
     -Cllvm-args=-sanitizer-coverage-trace-compares \
     --cfg fuzzing";

/// What one target's run did.
#[derive(Debug)]
pub struct FuzzRun {
    /// The target.
    pub target: &'static str,
    /// Inputs executed.
    pub executions: u64,
    /// Seconds it ran.
    pub seconds: u64,
    /// Inputs in its corpus afterwards.
    pub corpus: usize,
    /// Crashing inputs written (under `fuzz/artifacts/TARGET/`).
    pub crashes: Vec<PathBuf>,
}

/// Parses `[SECONDS] [TARGET…]` and runs.
pub fn fuzz_command(args: &[String]) -> anyhow::Result<()> {
    let mut seconds = DEFAULT_SECONDS;
    let mut chosen = Vec::new();
    for arg in args {
        if let Ok(n) = arg.parse::<u64>() {
            seconds = n;
        } else if let Some(target) = TARGETS.iter().find(|t| **t == arg.as_str()) {
            chosen.push(*target);
        } else {
            bail!(
                "unknown fuzz target `{arg}`: expected SECONDS or one of {}",
                TARGETS.join(", ")
            );
        }
    }
    if chosen.is_empty() {
        chosen = TARGETS.to_vec();
    }
    let runs = fuzz(seconds, &chosen)?;
    let crashed: Vec<&FuzzRun> = runs.iter().filter(|r| !r.crashes.is_empty()).collect();
    if !crashed.is_empty() {
        bail!(
            "fuzzing found crashes: {} (reproduce with the binary and the input; add it to \
             fuzz/regressions/TARGET/ and a regression test)",
            crashed
                .iter()
                .flat_map(|r| r.crashes.iter().map(|c| c.display().to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Builds the targets, replays `fuzz/regressions/TARGET/`, then fuzzes each for `seconds`.
pub fn fuzz(seconds: u64, targets: &[&'static str]) -> anyhow::Result<Vec<FuzzRun>> {
    let root = crate::workspace_root();
    let fuzz_dir = root.join("fuzz");
    if hostage_tests::find(hostage_tests::CXX).is_none() {
        bail!(
            "`g++` not found: libfuzzer-sys compiles libFuzzer; {}",
            hostage_tests::CXX.install_hint()
        );
    }
    let host = host_triple()?;
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| PathBuf::from(dir).join("fuzz"))
        .unwrap_or_else(|| root.join("target/fuzz"));
    println!(
        "$ RUSTFLAGS='{RUSTFLAGS}' cargo build --release --target {host} --bins (in fuzz/, target dir {})",
        target_dir.display()
    );
    duct::cmd!("cargo", "build", "--release", "--target", &host, "--bins")
        .dir(&fuzz_dir)
        .env("RUSTFLAGS", RUSTFLAGS)
        .env("CARGO_TARGET_DIR", &target_dir)
        .run()
        .context("building the fuzz targets failed")?;
    let bin_dir = target_dir.join(&host).join("release");
    let mut runs = Vec::new();
    for target in targets {
        runs.push(run_target(&fuzz_dir, &bin_dir, target, seconds)?);
    }
    println!("\ntarget          executions   seconds   exec/s   corpus   crashes");
    for run in &runs {
        println!(
            "{:<15} {:>10}   {:>7}   {:>6}   {:>6}   {:>7}",
            run.target,
            run.executions,
            run.seconds,
            run.executions / run.seconds.max(1),
            run.corpus,
            run.crashes.len()
        );
    }
    Ok(runs)
}

fn run_target(
    fuzz_dir: &Path,
    bin_dir: &Path,
    target: &'static str,
    seconds: u64,
) -> anyhow::Result<FuzzRun> {
    let bin = bin_dir.join(target);
    let corpus = fuzz_dir.join("corpus").join(target);
    let artifacts = fuzz_dir.join("artifacts").join(target);
    fs_err::create_dir_all(&corpus)?;
    fs_err::create_dir_all(&artifacts)?;
    let before = count_files(&artifacts);

    // Inputs that once crashed must keep passing (libFuzzer runs the files given, then exits).
    let regressions = fuzz_dir.join("regressions").join(target);
    if regressions.is_dir() && count_files(&regressions) > 0 {
        let mut inputs = vec!["-runs=1".to_owned()];
        for entry in fs_err::read_dir(&regressions)? {
            inputs.push(entry?.path().display().to_string());
        }
        println!("$ {} -runs=1 fuzz/regressions/{target}/*", bin.display());
        duct::cmd(&bin, &inputs)
            .stderr_null()
            .run()
            .with_context(|| format!("a regression input of `{target}` fails again"))?;
    }

    let mut args = vec![
        format!("-max_total_time={seconds}"),
        "-timeout=10".to_owned(),
        "-rss_limit_mb=2048".to_owned(),
        "-max_len=65536".to_owned(),
        "-print_final_stats=1".to_owned(),
        format!("-artifact_prefix={}/", artifacts.display()),
        corpus.display().to_string(),
    ];
    for seeds in seed_dirs(fuzz_dir, target) {
        args.push(seeds.display().to_string());
    }
    println!("$ {} {}", bin.display(), args.join(" "));
    let output = duct::cmd(&bin, &args)
        .stderr_capture()
        .stdout_null()
        .unchecked()
        .run()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let log = String::from_utf8_lossy(&output.stderr);
    let executions = stat(&log, "stat::number_of_executed_units:").unwrap_or(0);
    let ran = stat(&log, "Done ").map_or(seconds, |_| done_seconds(&log).unwrap_or(seconds));
    let crashes: Vec<PathBuf> = if count_files(&artifacts) > before || !output.status.success() {
        let found: Vec<PathBuf> = fs_err::read_dir(&artifacts)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if found.is_empty() {
            // Exit without an artifact (e.g. the build is broken): show why.
            bail!("`{target}` failed:\n{}", tail(&log, 30));
        }
        println!("{}", tail(&log, 30));
        found
    } else {
        Vec::new()
    };
    Ok(FuzzRun {
        target,
        executions,
        seconds: ran,
        corpus: count_files(&corpus),
        crashes,
    })
}

/// The committed seeds, plus the shared corpus of real `.sops.yaml` files when it is there.
fn seed_dirs(fuzz_dir: &Path, target: &str) -> Vec<PathBuf> {
    let mut dirs = vec![fuzz_dir.join("seeds").join(target)];
    if target == "sops_config" {
        let shared = fuzz_dir.join("../../shared/corpus/sops-yaml");
        if shared.is_dir() {
            dirs.push(shared);
        }
    }
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

fn count_files(dir: &Path) -> usize {
    fs_err::read_dir(dir).map_or(0, |entries| entries.flatten().count())
}

/// The number after `key` on its line of libFuzzer's final stats.
fn stat(log: &str, key: &str) -> Option<u64> {
    log.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
}

/// `Done 123 runs in 60 second(s)`.
fn done_seconds(log: &str) -> Option<u64> {
    let line = log.lines().rev().find(|l| l.starts_with("Done "))?;
    line.split(" in ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn host_triple() -> anyhow::Result<String> {
    let info = duct::cmd!("rustc", "-vV")
        .read()
        .context("cannot run rustc -vV")?;
    info.lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(str::to_owned)
        .context("rustc -vV names no host")
}

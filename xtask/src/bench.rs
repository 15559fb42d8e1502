//! `cargo xtask bench`: the re-wrap benchmark of docs/benchmarks.md.
//!
//! 1,000 sops-made YAML files (20 values, 3 age recipients) get a 4th recipient, three ways, each
//! on a fresh copy: hostage (parallel across cores, durable batched writes), one batched
//! `sops updatekeys -y f1 … fN` call, and a `sops updatekeys -y f` loop. Fixtures and throwaway
//! keys live under `target/bench/`, never in the repository.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hostage_recipients::{AgeIdentity, IdentitySet, IdentitySource};
use hostage_sops::{MacCheck, SopsFile};

/// Four throwaway age keys, kept in `keys.txt` under a benchmark's directory.
pub(crate) struct Keys {
    pub(crate) secrets: Vec<String>,
    pub(crate) recipients: Vec<String>,
}

fn keygen() -> anyhow::Result<(String, String)> {
    let out = duct::cmd!("age-keygen")
        .stderr_null()
        .read()
        .context("running age-keygen")?;
    let secret = out
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .context("age-keygen printed no key")?
        .to_owned();
    let recipient = AgeIdentity::parse(&secret)?.recipient().to_string();
    Ok((secret, recipient))
}

/// The benchmark's keys, made with `age-keygen` on first use.
pub(crate) fn keys(dir: &Path) -> anyhow::Result<Keys> {
    let path = dir.join("keys.txt");
    if !path.exists() {
        let mut text = String::new();
        for _ in 0..4 {
            let (secret, _) = keygen()?;
            text.push_str(&secret);
            text.push('\n');
        }
        fs_write(&path, &text)?;
    }
    let text =
        fs_err::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let secrets: Vec<String> = text.lines().map(str::to_owned).collect();
    let recipients = secrets
        .iter()
        .map(|s| Ok(AgeIdentity::parse(s)?.recipient().to_string()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Keys {
        secrets,
        recipients,
    })
}

fn fs_write(path: &Path, text: &str) -> anyhow::Result<()> {
    hostage_atomic::write(path, text.as_bytes())?;
    Ok(())
}

/// A `.sops.yaml` with one catch-all rule for `recipients`.
pub(crate) fn config(recipients: &[String]) -> String {
    format!("creation_rules:\n  - age: {}\n", recipients.join(","))
}

/// The sops oracle run in `dir`, offline, with `secret` as its only identity.
pub(crate) fn sops_cmd(
    sops: &Path,
    dir: &Path,
    secret: &str,
    args: Vec<String>,
) -> duct::Expression {
    duct::cmd(sops, args)
        .dir(dir)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .env("SOPS_AGE_KEY", secret)
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
}

fn plaintext(name: &str) -> String {
    let mut text = format!("# service {name}\n");
    for v in 0..20 {
        text.push_str(&format!("key_{v:02}: value-{name}-{v}-{}\n", "x".repeat(v)));
    }
    text
}

/// Makes (once) `count` sops-encrypted files in `dir/pristine`.
pub(crate) fn fixtures(
    sops: &Path,
    dir: &Path,
    keys: &Keys,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let pristine = dir.join("pristine");
    fs_err::create_dir_all(&pristine)?;
    fs_write(&pristine.join(".sops.yaml"), &config(&keys.recipients[..3]))?;
    let names: Vec<String> = (0..count).map(|i| format!("f{i:04}.yaml")).collect();
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !pristine.join(n).exists())
        .collect();
    if !missing.is_empty() {
        println!(
            "making {} sops-encrypted fixtures with sops (once)…",
            missing.len()
        );
        let chunks: Vec<Vec<&String>> = missing
            .chunks(missing.len().div_ceil(threads()))
            .map(<[_]>::to_vec)
            .collect();
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let pristine = &pristine;
                    scope.spawn(move || -> anyhow::Result<()> {
                        for name in chunk {
                            let plain = pristine.join(format!("{name}.plain"));
                            hostage_atomic::write(&plain, plaintext(name).as_bytes())?;
                            let out = sops_cmd(
                                sops,
                                pristine,
                                "",
                                vec![
                                    "encrypt".into(),
                                    "--input-type".into(),
                                    "yaml".into(),
                                    "--output-type".into(),
                                    "yaml".into(),
                                    plain.display().to_string(),
                                ],
                            )
                            .read()?;
                            fs_err::remove_file(&plain)?;
                            hostage_atomic::write(
                                &pristine.join(name),
                                format!("{out}\n").as_bytes(),
                            )?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for handle in handles {
                handle
                    .join()
                    .map_err(|_| anyhow::anyhow!("a fixture thread panicked"))??;
            }
            Ok(())
        })?;
    }
    Ok(names)
}

/// Worker threads: one per core.
pub(crate) fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// A fresh copy of the fixtures, with a `.sops.yaml` naming all four recipients.
fn workdir(dir: &Path, name: &str, files: &[String], keys: &Keys) -> anyhow::Result<PathBuf> {
    let work = dir.join(name);
    if work.exists() {
        fs_err::remove_dir_all(&work)?;
    }
    fs_err::create_dir_all(&work)?;
    for file in files {
        fs_err::copy(dir.join("pristine").join(file), work.join(file))?;
    }
    fs_write(&work.join(".sops.yaml"), &config(&keys.recipients))?;
    duct::cmd!("sync").run()?;
    Ok(work)
}

fn hostage_rewrap(
    work: &Path,
    files: &[String],
    keys: &Keys,
    how: hostage_atomic::Flush,
) -> anyhow::Result<()> {
    let identities = IdentitySet::from_identities(
        IdentitySource::KeyVariable,
        vec![AgeIdentity::parse(&keys.secrets[0])?],
    );
    let wanted = vec![keys.recipients.clone()];
    let started = Instant::now();
    let chunk = files.len().div_ceil(threads()).max(1);
    let batch = hostage_atomic::Batch::new(how);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|names| {
                let (identities, wanted, batch) = (&identities, &wanted, &batch);
                scope.spawn(move || -> anyhow::Result<()> {
                    for name in names {
                        let path = work.join(name);
                        let bytes = fs_err::read(&path)?;
                        let file = SopsFile::parse(&bytes, None)?;
                        let key = file.data_key(identities, &mut ())?;
                        batch.stage(&path, &file.rewrap(&key, wanted, MacCheck::Verify)?)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("a worker panicked"))??;
        }
        Ok(())
    })?;
    let compute = started.elapsed();
    batch.commit()?;
    println!(
        "  hostage: read+verify+re-wrap+stage {:.0} ms, flush+rename ({how:?}) {:.0} ms",
        compute.as_secs_f64() * 1000.0,
        (started.elapsed() - compute).as_secs_f64() * 1000.0
    );
    Ok(())
}

fn check(sops: &Path, work: &Path, files: &[String], keys: &Keys) -> anyhow::Result<()> {
    for name in [&files[0], &files[files.len() / 2], &files[files.len() - 1]] {
        let text = fs_err::read_to_string(work.join(name))?;
        if !text.contains(&keys.recipients[3]) {
            bail!("{name} in {} lacks the new recipient", work.display());
        }
        sops_cmd(
            sops,
            work,
            &keys.secrets[3],
            vec!["decrypt".into(), name.clone()],
        )
        .stdout_null()
        .run()
        .with_context(|| format!("sops cannot decrypt {name} with the new key"))?;
    }
    Ok(())
}

fn time(f: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// Runs the re-wrap benchmark over `count` files and prints the table for docs/benchmarks.md.
pub(crate) fn rewrap(sops: &Path, dir: &Path, count: usize) -> anyhow::Result<()> {
    if count < 3 {
        bail!("the benchmark needs at least 3 files");
    }
    fs_err::create_dir_all(dir)?;
    let keys = keys(dir)?;
    let files = fixtures(sops, dir, &keys, count)?;
    let secret = keys.secrets[0].clone();

    let mut medians = Vec::new();
    for how in [
        hostage_atomic::Flush::Files,
        hostage_atomic::Flush::Filesystem,
    ] {
        let mut runs = Vec::new();
        for run in 0..3 {
            let work = workdir(dir, "hostage", &files, &keys)?;
            runs.push(time(|| hostage_rewrap(&work, &files, &keys, how))?);
            if run == 0 {
                check(sops, &work, &files, &keys)?;
            }
        }
        runs.sort();
        medians.push(runs[1]);
    }
    let (hostage, hostage_syncfs) = (medians[0], medians[1]);

    let work = workdir(dir, "sops-batch", &files, &keys)?;
    let mut args = vec!["updatekeys".to_owned(), "-y".to_owned()];
    args.extend(files.iter().cloned());
    println!("$ sops updatekeys -y f0000.yaml … ({} files)", files.len());
    let batch = time(|| {
        sops_cmd(sops, &work, &secret, args.clone())
            .stdout_null()
            .stderr_null()
            .run()?;
        Ok(())
    })?;
    check(sops, &work, &files, &keys)?;

    let work = workdir(dir, "sops-loop", &files, &keys)?;
    println!(
        "$ for f in …; do sops updatekeys -y $f; done ({} files)",
        files.len()
    );
    let looped = time(|| {
        for name in &files {
            sops_cmd(
                sops,
                &work,
                &secret,
                vec!["updatekeys".into(), "-y".into(), name.clone()],
            )
            .stdout_null()
            .stderr_null()
            .run()?;
        }
        Ok(())
    })?;
    check(sops, &work, &files, &keys)?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!();
    println!("re-wrap: add a 4th age recipient to {} sops-made YAML files (20 values, 3 recipients), {} threads", files.len(), threads());
    println!("| method | total | per file | hostage is |");
    println!("|---|---|---|---|");
    println!(
        "| hostage: verify MAC, re-wrap, durable batch write (concurrent fdatasync; median of 3) | {:.0} ms | {:.3} ms | — |",
        ms(hostage),
        ms(hostage) / files.len() as f64
    );
    println!(
        "| hostage, same with one syncfs instead (median of 3) | {:.0} ms | {:.3} ms | — |",
        ms(hostage_syncfs),
        ms(hostage_syncfs) / files.len() as f64
    );
    println!("| `sops updatekeys -y f1 … f{}` (one call, no fsync) | {:.0} ms | {:.3} ms | {:.1}× faster |", files.len(), ms(batch), ms(batch) / files.len() as f64, ms(batch) / ms(hostage));
    println!(
        "| `sops updatekeys -y f` per file (no fsync) | {:.0} ms | {:.3} ms | {:.1}× faster |",
        ms(looped),
        ms(looped) / files.len() as f64,
        ms(looped) / ms(hostage)
    );
    Ok(())
}

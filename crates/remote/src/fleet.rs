//! Running one job over many hosts: bounded concurrency, a timeout per host, results in input
//! order, a callback as each host finishes, pins recorded for hosts trusted on first use.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt as _;

use crate::backup::read_private_key;
use crate::connect::{connect, Connection};
use crate::deploy::deploy_key;
use crate::fetch::verify_key_file;
use crate::restore::{restore_key, RestoreOptions, RestoredHost};
use crate::run_dir::RunDir;
use crate::wipe::WipedHost;
use crate::{
    BackedUpHost, DeployOptions, DeployedHost, FetchedHost, Fingerprint, FleetError, HostError,
    HostSpec, InfrastructureKey, PinRecorder, VerifiedBy,
};

/// Options of one run over the fleet.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// The user's ssh config to honour (`None`: `~/.ssh/config` and `/etc/ssh/ssh_config`).
    pub ssh_config: Option<PathBuf>,
    /// known_hosts to trust (`None`: ssh's defaults).
    pub known_hosts: Option<PathBuf>,
    /// Accept hosts nothing vouches for, and record their pins.
    pub trust_new: bool,
    /// Hosts worked on at once.
    pub jobs: usize,
    /// Time allowed per host, connection included.
    pub timeout: Duration,
    /// Change nothing: no pins recorded, no keys written.
    pub dry_run: bool,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            ssh_config: None,
            known_hosts: None,
            trust_new: false,
            jobs: crate::DEFAULT_JOBS,
            timeout: Duration::from_secs(30),
            dry_run: false,
        }
    }
}

/// One host to work on.
#[derive(Clone, Debug)]
pub struct HostTarget {
    /// How to reach it.
    pub spec: HostSpec,
    /// The fingerprint its key must have, when pinned.
    pub pin: Option<Fingerprint>,
    /// Where its ed25519 public key file lives.
    pub key_path: String,
}

/// The outcome for one host.
#[derive(Debug)]
pub struct HostResult<T> {
    /// The host.
    pub target: HostTarget,
    /// What happened.
    pub outcome: Result<T, HostError>,
}

/// Results that carry the verified host (for recording pins).
trait Verified {
    fn fetched(&self) -> &FetchedHost;
}

impl Verified for FetchedHost {
    fn fetched(&self) -> &FetchedHost {
        self
    }
}

impl Verified for RestoredHost {
    fn fetched(&self) -> &FetchedHost {
        &self.host
    }
}

impl Verified for BackedUpHost {
    fn fetched(&self) -> &FetchedHost {
        &self.host
    }
}

impl Verified for WipedHost {
    fn fetched(&self) -> &FetchedHost {
        &self.host
    }
}

impl Verified for DeployedHost {
    fn fetched(&self) -> &FetchedHost {
        &self.host
    }
}

/// Fetches and verifies every host's ed25519 key. `on_done` sees each result as it arrives.
pub async fn fetch(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    pins: &mut dyn PinRecorder,
    on_done: &(dyn Fn(&HostResult<FetchedHost>) + Sync),
) -> Result<Vec<HostResult<FetchedHost>>, FleetError> {
    run_verified(targets, options, pins, on_done, async |_, host| Ok(host)).await
}

/// Verifies every host, then deploys `key` to it (or, in a dry run, says what it would do).
pub async fn deploy(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    pins: &mut dyn PinRecorder,
    key: &InfrastructureKey,
    deploy: &DeployOptions,
    on_done: &(dyn Fn(&HostResult<DeployedHost>) + Sync),
) -> Result<Vec<HostResult<DeployedHost>>, FleetError> {
    let dry_run = options.dry_run;
    run_verified(targets, options, pins, on_done, async |connection, host| {
        deploy_key(connection, host, key, deploy, dry_run).await
    })
    .await
}

/// Verifies every host (by the key it presents now), then installs `key` as its own host key at
/// `restore.target` (or, in a dry run, says whether it would). For a rebuilt host whose old
/// identity is restored from a backup; the restore takes effect for SSH once sshd restarts.
pub async fn restore_host_key(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    pins: &mut dyn PinRecorder,
    key: &InfrastructureKey,
    restore: &RestoreOptions,
    on_done: &(dyn Fn(&HostResult<RestoredHost>) + Sync),
) -> Result<Vec<HostResult<RestoredHost>>, FleetError> {
    let dry_run = options.dry_run;
    run_verified(targets, options, pins, on_done, async |connection, host| {
        restore_key(connection, host, key, restore, dry_run).await
    })
    .await
}

/// Verifies every host, then reads its private host key at `private_path` (as root, through
/// `sudo -n` when the login user is not) and checks it derives the verified public key. The key
/// stays in memory; nothing is written anywhere.
pub async fn read_host_private_key(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    pins: &mut dyn PinRecorder,
    private_path: &str,
    on_done: &(dyn Fn(&HostResult<BackedUpHost>) + Sync),
) -> Result<Vec<HostResult<BackedUpHost>>, FleetError> {
    run_verified(targets, options, pins, on_done, async |connection, host| {
        read_private_key(connection, host, private_path).await
    })
    .await
}

/// Verifies every host, then deletes `path` on it as root (`rm -f`; a missing file is fine). For
/// a host leaving the fleet that may still hold a deployed key.
pub async fn wipe_file(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    pins: &mut dyn PinRecorder,
    path: &str,
    on_done: &(dyn Fn(&HostResult<WipedHost>) + Sync),
) -> Result<Vec<HostResult<WipedHost>>, FleetError> {
    run_verified(targets, options, pins, on_done, async |connection, host| {
        crate::wipe::wipe_file(connection, host, path).await
    })
    .await
}

/// [`run`] with every host's key verified first (`verify_key_file`: its pin, known_hosts, or
/// trust on first use), then `act` on the connection and the verified host; the connection is
/// closed whatever `act` returned. Every public entry point of this module is this.
async fn run_verified<T: Verified>(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    pins: &mut dyn PinRecorder,
    on_done: &(dyn Fn(&HostResult<T>) + Sync),
    act: impl AsyncFn(&Connection, FetchedHost) -> Result<T, HostError>,
) -> Result<Vec<HostResult<T>>, FleetError> {
    let act = &act;
    run(
        targets,
        options,
        pins,
        on_done,
        |connection, target| async move {
            let result = async {
                let host = verify_key_file(&connection, &target.spec, &target.key_path).await?;
                act(&connection, host).await
            }
            .await;
            connection.close().await;
            result
        },
    )
    .await
}

/// Connects to every target (at most `options.jobs` at once, each within `options.timeout`) and
/// runs `work` on the connection; records the pins of hosts trusted on first use, calls
/// `on_done` as each host finishes, and returns the results in the targets' order.
async fn run<'a, T, F, Fut>(
    targets: Vec<HostTarget>,
    options: &'a FleetOptions,
    pins: &mut dyn PinRecorder,
    on_done: &(dyn Fn(&HostResult<T>) + Sync),
    work: F,
) -> Result<Vec<HostResult<T>>, FleetError>
where
    T: Verified,
    F: Fn(Connection, HostTarget) -> Fut + 'a,
    Fut: Future<Output = Result<T, HostError>> + 'a,
{
    // Declared first so it is dropped last: after every session, it stops what is left.
    let run_dir = RunDir::create().map_err(FleetError::RunDir)?;
    let seconds = options.timeout.as_secs();
    let work = &work;
    let run_dir_ref = &run_dir;
    let mut stream = futures::stream::iter(targets.into_iter().enumerate())
        .map(|(index, target)| async move {
            let job = async {
                let connection = connect(run_dir_ref, index, &target, options).await?;
                work(connection, target.clone()).await
            };
            let outcome = match tokio::time::timeout(options.timeout, job).await {
                Ok(outcome) => outcome,
                Err(_) => Err(HostError::TimedOut { seconds }),
            };
            (index, HostResult { target, outcome })
        })
        .buffer_unordered(options.jobs.max(1));
    let mut results = Vec::new();
    while let Some((index, mut result)) = stream.next().await {
        if let Ok(done) = &result.outcome {
            let host = done.fetched();
            if host.verified_by == VerifiedBy::TrustedNew && !options.dry_run {
                if let Err(e) = pins.record(host) {
                    result.outcome = Err(HostError::PinRecord(e));
                }
            }
        }
        on_done(&result);
        results.push((index, result));
    }
    drop(stream);
    run_dir.stop_stray_masters();
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

//! `fetch` and `deploy` over many hosts at once: runs the fleet operation until every host has
//! finished or the operator presses Ctrl-C (every ssh connection of the run is then closed), and
//! records the pins of the verified inventory hosts in the inventory afterwards. Each host's
//! result is handed to `on_done` as it finishes, so the caller can stream it.

use hostage_remote::{
    DeployOptions, DeployedHost, FetchedHost, FleetOptions, HostResult, HostTarget,
    InfrastructureKey,
};

use crate::InventoryPins;

/// How a fleet run ended.
#[derive(Debug)]
pub enum FleetRun<T> {
    /// Every host finished (each with its own outcome).
    Finished {
        /// One result per target, in the order given.
        results: Vec<HostResult<T>>,
        /// Pins of verified hosts that could not be recorded (`host: why`).
        pin_errors: Vec<String>,
    },
    /// Ctrl-C: the run was stopped and its connections closed.
    Interrupted,
}

/// Fetches and verifies the hosts' keys; `recorder` records the pins of hosts it trusted new,
/// and (unless `options.dry_run`) every verified inventory host's pin afterwards.
pub fn fetch(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    recorder: &mut InventoryPins<'_>,
    on_done: &(dyn Fn(&HostResult<FetchedHost>) + Sync),
) -> crate::Result<FleetRun<FetchedHost>> {
    let outcome = until_ctrl_c(hostage_remote::fetch(targets, options, recorder, on_done))?;
    finished(outcome, options, recorder, |host| host)
}

/// Deploys `key` to the hosts (verified first, as [`fetch`] does), recording pins likewise.
pub fn deploy(
    targets: Vec<HostTarget>,
    options: &FleetOptions,
    recorder: &mut InventoryPins<'_>,
    key: &InfrastructureKey,
    deploy: &DeployOptions,
    on_done: &(dyn Fn(&HostResult<DeployedHost>) + Sync),
) -> crate::Result<FleetRun<DeployedHost>> {
    let outcome = until_ctrl_c(hostage_remote::deploy(
        targets, options, recorder, key, deploy, on_done,
    ))?;
    finished(outcome, options, recorder, |done| &done.host)
}

/// Runs `run` to its end, or until Ctrl-C (`None`): dropping the run closes its connections.
fn until_ctrl_c<F: std::future::Future>(run: F) -> crate::Result<Option<F::Output>> {
    Ok(crate::runtime()?.block_on(async {
        tokio::select! {
            output = run => Some(output),
            _ = tokio::signal::ctrl_c() => None,
        }
    }))
}

/// How a run ended: interrupted, or finished with every result and, unless
/// `options.dry_run`, the pins of its verified hosts (`verified` finds each one's) recorded.
fn finished<T, E>(
    outcome: Option<Result<Vec<HostResult<T>>, E>>,
    options: &FleetOptions,
    recorder: &mut InventoryPins<'_>,
    verified: impl Fn(&T) -> &FetchedHost,
) -> crate::Result<FleetRun<T>>
where
    crate::WorkflowError: From<E>,
{
    let Some(results) = outcome else {
        return Ok(FleetRun::Interrupted);
    };
    let results = results?;
    let pin_errors = if options.dry_run {
        Vec::new()
    } else {
        record_pins(
            recorder,
            results
                .iter()
                .filter_map(|r| r.outcome.as_ref().ok())
                .map(verified),
        )
    };
    Ok(FleetRun::Finished {
        results,
        pin_errors,
    })
}

/// Records the pins of `hosts` (verified ones); returns what could not be recorded.
fn record_pins<'a>(
    recorder: &mut InventoryPins<'_>,
    hosts: impl Iterator<Item = &'a FetchedHost>,
) -> Vec<String> {
    hosts
        .filter_map(|host| {
            recorder
                .record_verified(host)
                .err()
                .map(|e| format!("cannot record the pin of {}: {e}", host.spec))
        })
        .collect()
}

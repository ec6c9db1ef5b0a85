//! Several service instances on one database (issue 19): the closed-loop `POST /v1/orders` rate
//! with 1, 2 and 3 `creditphone serve` processes on the one order database.
//!
//! At every count the closed loop has the same connections in total (`--connections`), spread
//! round-robin over the instances' URLs, and each instance is its own process with its own pool
//! of ⌈pool size ÷ n⌉ connections (32, 16 and 11 by default), so PostgreSQL serves about as many
//! sessions at every count and only the number of service processes changes. The instances are
//! started afresh for each count, after the main service has stopped, and each count is measured
//! for `Params::instances_secs` (shorter than the main order phases) after the same warm-up and
//! `VACUUM (ANALYZE)` as those.

use crate::api::World;
use crate::cluster::Cluster;
use crate::load::{LoadResult, OrderTarget, Route, closed_loop};
use crate::observe::{Observation, Observer};
use crate::service::Service;
use crate::{Params, print_obs, settle};
use anyhow::{Result, bail};
use std::path::Path;
use std::time::Duration;

/// The instance counts measured.
pub const COUNTS: [usize; 3] = [1, 2, 3];

/// One count's closed loop.
pub struct InstancesRun {
    pub instances: usize,
    /// The database pool of each instance.
    pub pool_each: usize,
    pub load: LoadResult,
    pub obs: Observation,
}

/// Each instance's pool, so that the pools together stay at about `pool`.
pub fn pool_each(pool: usize, instances: usize) -> usize {
    pool.div_ceil(instances.max(1)).max(1)
}

/// Every count of `COUNTS` in turn, on `db` (already seeded with `world`).
pub async fn run(
    cluster: &Cluster,
    db: &str,
    params: &Params,
    server_bin: &Path,
    workdir: &Path,
    world: &World,
) -> Result<Vec<InstancesRun>> {
    let mut runs = Vec::with_capacity(COUNTS.len());
    for n in COUNTS {
        let pool = pool_each(params.service_pool_size, n);
        let mut services = Vec::with_capacity(n);
        let mut started = Ok(());
        for i in 1..=n {
            match Service::start(server_bin, &cluster.url(db), workdir, &format!("instances-{n}-{i}"), pool).await {
                Ok(s) => services.push(s),
                Err(e) => {
                    started = Err(e);
                    break;
                }
            }
        }
        let outcome = match started {
            Ok(()) => measure(cluster, db, params, world, &services, pool).await,
            Err(e) => Err(e),
        };
        for s in services {
            if let Err(e) = s.stop().await {
                eprintln!("creditphone-bench: stopping an instance: {e:#}");
            }
        }
        runs.push(outcome?);
    }
    Ok(runs)
}

async fn measure(cluster: &Cluster, db: &str, params: &Params, world: &World, services: &[Service], pool: usize) -> Result<InstancesRun> {
    let n = services.len();
    let refs: Vec<&Service> = services.iter().collect();
    let target = OrderTarget::new(world, &refs, Route::Spread)?;
    let prefix = format!("instances-{n}");
    if !params.warmup.is_zero() {
        let w = closed_loop(&target, &format!("{prefix}-warm"), params.connections, params.warmup).await;
        println!("   warm-up: {} orders in {:.1} s", w.ok, w.elapsed_secs);
    }
    settle(cluster, db).await?;
    println!(
        "\n== orders, spread, {n} instance(s) of pool {pool}: closed loop, {} connections round-robin over them, {} s",
        params.connections, params.instances_secs
    );
    let pids: Vec<u32> = services.iter().map(|s| s.pid).collect();
    let obs = Observer::start(cluster, db, &pids).await?;
    let load = closed_loop(&target, &prefix, params.connections, Duration::from_secs(params.instances_secs)).await;
    let obs = obs.finish().await?;
    println!("   {}", load.summary());
    print_obs(&obs, load.requests, "order");
    if n > 1 {
        println!("   CPU cores busy by instance: {}", per_instance(&obs));
    }
    if load.ok == 0 {
        bail!("no order succeeded with {n} instance(s): {}", load.error_summary());
    }
    Ok(InstancesRun { instances: n, pool_each: pool, load, obs })
}

/// Each instance's CPU, as "0.41 + 0.39".
pub fn per_instance(obs: &Observation) -> String {
    obs.cpu.services.iter().map(|c| format!("{c:.2}")).collect::<Vec<_>>().join(" + ")
}

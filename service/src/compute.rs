//! The compute threads: rayon's global pool, onto which the encoder's forward passes and the
//! exact neighbour scans fork their work, set up once when `serve` starts.
//!
//! **Pinning.** Each pool thread is pinned to its own CPU when the process may run on exactly as
//! many CPUs as the pool has threads (`compute.pin_threads`, default on). Measured on the 2-vCPU
//! KVM guest of session 12, whose scheduler packs the threads of a mostly idle guest onto one
//! vCPU: after every pause of more than ~10 ms the encoder's two threads shared one CPU until
//! the load spread them again, so a lone request after a pause paid more than a one-thread pass.
//! - One-text forward pass, 200 loan lines (`model/examples` probe, 2 threads): back to back
//!   p50 7.3 ms either way; after 40 ms idle each, p50 10.4 ms unpinned, **7.7 ms pinned**
//!   (one thread: 10.2 ms).
//! - `touxiang serve`, one connection at ~20 requests/s (`wrk -t1 -c1 -d30s --latency -s
//!   eval/bench/classify_paced.lua URL -- 30 1`): classify p50 16.6 / p99 23.5 ms unpinned,
//!   **12.7 / 14.9 ms pinned**.
//!
//! Where the process shares a wider CPU set under a quota (a container limited with `--cpus` on
//! a larger host), pinning would tie the threads to CPUs other tenants use: the pool is left
//! unpinned there and the log says why.

use core_affinity::CoreId;

/// What [`configure`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSetup {
    /// Threads in the pool.
    pub threads: usize,
    /// The CPU of each thread, when pinned.
    pub pinned: Option<Vec<usize>>,
    /// Why the threads are not pinned (`None` when they are).
    pub unpinned_because: Option<String>,
}

/// The plan for `threads` pool threads when the process may run on `cpus` (`None`: unknown).
pub fn plan(pin_threads: bool, threads: usize, cpus: Option<&[CoreId]>) -> PoolSetup {
    let unpinned = |why: String| PoolSetup {
        threads,
        pinned: None,
        unpinned_because: Some(why),
    };
    if !pin_threads {
        return unpinned("compute.pin_threads is off".into());
    }
    match cpus {
        None => unpinned("this platform does not report the process's CPUs".into()),
        Some(c) if c.len() != threads => unpinned(format!(
            "the process may run on {} CPUs and the pool has {threads} threads \
             (a CPU quota on a shared set): pinning would tie threads to CPUs others use",
            c.len()
        )),
        Some(c) => PoolSetup {
            threads,
            pinned: Some(c.iter().map(|c| c.id).collect()),
            unpinned_because: None,
        },
    }
}

/// Threads rayon would start by default: `RAYON_NUM_THREADS` when set, else the CPUs this
/// process may use (affinity and cgroup quota).
pub fn default_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
}

/// Builds rayon's global pool as planned. Must run before anything else uses rayon; when the
/// pool exists already, says so and leaves it as it is.
pub fn configure(cfg: &crate::config::ComputeConfig) -> PoolSetup {
    let threads = default_threads();
    let cpus = core_affinity::get_core_ids();
    let mut setup = plan(cfg.pin_threads, threads, cpus.as_deref());
    let pins = setup.pinned.clone();
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("touxiang-compute-{i}"))
        .start_handler(move |i| {
            if let Some(cpu) = pins.as_ref().and_then(|p| p.get(i)) {
                if !core_affinity::set_for_current(CoreId { id: *cpu }) {
                    tracing::warn!(thread = i, cpu, "could not pin a compute thread");
                }
            }
        })
        .build_global();
    if let Err(e) = built {
        setup.pinned = None;
        setup.unpinned_because = Some(format!("the thread pool was already running: {e}"));
    }
    match &setup.pinned {
        Some(cpus) => tracing::info!(threads, ?cpus, "compute threads pinned"),
        None => tracing::info!(
            threads,
            reason = setup.unpinned_because.as_deref().unwrap_or(""),
            "compute threads not pinned"
        ),
    }
    setup
}

/// Publishes the setup as gauges (`touxiang_compute_threads`, `touxiang_compute_threads_pinned`).
pub fn record(setup: &PoolSetup) {
    metrics::gauge!("touxiang_compute_threads").set(setup.threads as f64);
    metrics::gauge!("touxiang_compute_threads_pinned").set(if setup.pinned.is_some() {
        1.0
    } else {
        0.0
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cores(ids: &[usize]) -> Vec<CoreId> {
        ids.iter().map(|&id| CoreId { id }).collect()
    }

    #[test]
    fn pins_only_when_the_pool_has_the_process_cpus_to_itself() {
        let own = plan(true, 2, Some(&cores(&[2, 5])));
        assert_eq!(own.pinned, Some(vec![2, 5]));
        assert_eq!(own.unpinned_because, None);

        let shared = plan(true, 2, Some(&cores(&[0, 1, 2, 3, 4, 5, 6, 7])));
        assert_eq!(shared.pinned, None);
        assert!(shared.unpinned_because.unwrap().contains("8 CPUs"));

        let off = plan(false, 2, Some(&cores(&[0, 1])));
        assert_eq!(off.pinned, None);
        assert!(off.unpinned_because.unwrap().contains("pin_threads is off"));

        assert_eq!(plan(true, 4, None).pinned, None);
    }
}

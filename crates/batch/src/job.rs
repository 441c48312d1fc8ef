//! Background batch jobs for the HTTP API (`POST /v1/jobs`, `GET /v1/jobs/{id}`, cancel).

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use touxiang_datasets::Labeler;

use crate::engine::{run, BatchHooks, BatchSummary};
use crate::error::BatchError;
use crate::options::BatchOptions;
use crate::progress::ProgressSnapshot;

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Running,
    Succeeded,
    Failed,
    /// Stopped by [`BatchJob::cancel`]; the checkpoint stays, so a new job with `resume` continues.
    Cancelled,
}

/// Error of a failed job, in the API's error shape (`code`, `message`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    pub code: String,
    pub message: String,
}

/// Everything `GET /v1/jobs/{id}` needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobSnapshot {
    pub id: String,
    pub state: JobState,
    pub progress: ProgressSnapshot,
    pub options: BatchOptions,
    pub started_at_unix: f64,
    pub finished_at_unix: Option<f64>,
    /// Present once the job succeeded (counts, row issues with row numbers, diff report).
    pub summary: Option<BatchSummary>,
    pub error: Option<JobError>,
}

struct Status {
    state: JobState,
    finished_at_unix: Option<f64>,
    summary: Option<BatchSummary>,
    error: Option<JobError>,
}

/// One batch run on its own thread, with shared progress and a cancel flag.
pub struct BatchJob {
    id: String,
    options: BatchOptions,
    hooks: BatchHooks,
    started_at_unix: f64,
    status: Arc<Mutex<Status>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl BatchJob {
    /// Start `run(options, labeler, hooks)` on a new thread. The job id is `job_<uuid>`.
    pub fn spawn(
        options: BatchOptions,
        labeler: Arc<dyn Labeler>,
        hooks: BatchHooks,
    ) -> Result<Arc<BatchJob>, BatchError> {
        let id = format!("job_{}", uuid::Uuid::new_v4().simple());
        let status = Arc::new(Mutex::new(Status {
            state: JobState::Running,
            finished_at_unix: None,
            summary: None,
            error: None,
        }));
        let job = Arc::new(BatchJob {
            id: id.clone(),
            options: options.clone(),
            hooks: hooks.clone(),
            started_at_unix: now(),
            status: status.clone(),
            thread: Mutex::new(None),
        });
        let handle = std::thread::Builder::new()
            .name(format!("batch-{id}"))
            .spawn(move || {
                let result = run(&options, labeler.as_ref(), &hooks);
                let mut s = status.lock().unwrap_or_else(|p| p.into_inner());
                s.finished_at_unix = Some(now());
                match result {
                    Ok(summary) => {
                        s.state = JobState::Succeeded;
                        s.summary = Some(summary);
                    }
                    Err(e) => {
                        s.state = if matches!(e, BatchError::Cancelled { .. }) {
                            JobState::Cancelled
                        } else {
                            JobState::Failed
                        };
                        s.error = Some(JobError {
                            code: e.code().to_string(),
                            message: e.to_string(),
                        });
                    }
                }
            })
            .map_err(|e| BatchError::io("cannot start job thread for", &job.options.input, e))?;
        *job.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(job)
    }

    /// Job id (`job_…`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Ask the job to stop after its current chunk.
    pub fn cancel(&self) {
        self.hooks.cancel.store(true, Ordering::Relaxed);
    }

    /// Current state, progress and (when finished) summary or error.
    pub fn snapshot(&self) -> JobSnapshot {
        let s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        JobSnapshot {
            id: self.id.clone(),
            state: s.state,
            progress: self.hooks.progress.snapshot(),
            options: self.options.clone(),
            started_at_unix: self.started_at_unix,
            finished_at_unix: s.finished_at_unix,
            summary: s.summary.clone(),
            error: s.error.clone(),
        }
    }

    /// Block until the job ends; returns its final snapshot.
    pub fn wait(&self) -> JobSnapshot {
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        self.snapshot()
    }
}

/// The jobs of one server process, by id.
#[derive(Default)]
pub struct JobRegistry {
    jobs: Mutex<BTreeMap<String, Arc<BatchJob>>>,
}

impl JobRegistry {
    pub fn new() -> JobRegistry {
        JobRegistry::default()
    }

    /// Spawn a job and register it.
    pub fn spawn(
        &self,
        options: BatchOptions,
        labeler: Arc<dyn Labeler>,
        hooks: BatchHooks,
    ) -> Result<Arc<BatchJob>, BatchError> {
        let job = BatchJob::spawn(options, labeler, hooks)?;
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id().to_string(), job.clone());
        Ok(job)
    }

    pub fn get(&self, id: &str) -> Option<Arc<BatchJob>> {
        self.jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Snapshots of all jobs, by id.
    pub fn list(&self) -> Vec<JobSnapshot> {
        let jobs: Vec<Arc<BatchJob>> = self
            .jobs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        jobs.iter().map(|j| j.snapshot()).collect()
    }

    /// Cancel a job; `false` if the id is unknown.
    pub fn cancel(&self, id: &str) -> bool {
        match self.get(id) {
            Some(j) => {
                j.cancel();
                true
            }
            None => false,
        }
    }
}

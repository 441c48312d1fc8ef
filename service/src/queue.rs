//! The embedding request queue: requests from many clients are batched into shared forward
//! passes (like text-embeddings-inference). Admission sheds load instead of growing memory and
//! latency: a request is refused at once (429, `Retry-After`) when it would push the queued
//! tokens past their budget, when too many requests wait already, or when its expected wait —
//! queued tokens × the seconds per token the worker measures (moving average over batches), or
//! the requests in flight × the measured pace of answers ([`Pace`]), whichever is longer —
//! exceeds the wait budget. A request counts until its [`Ticket`] is dropped: `/v1/classify`
//! holds it until its answer is built. Offered 400 rps of single-item classify against ~180 rps of
//! capacity, the token budget alone answered everything, after a p50 of 27 s.
//! Background work (embedding shipped exemplars on a first start, replays) goes through the same
//! worker at lower priority: it runs only when no request waits, one small job at a time, so a
//! request waits behind at most one background job. HTTP batch jobs and portfolio or payment
//! uploads embed through that lane too ([`crate::engine::QueueEmbed`]), so a large upload slows
//! down while `/v1/classify` traffic waits instead of competing with it for the cores.
//! A request whose caller has gone (client disconnected, handler dropped) is taken out before
//! its batch runs: nobody would read its vectors.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use touxiang_model::E5Model;

use crate::error::ApiError;

struct Job {
    ids: Vec<Vec<u32>>,
    tokens: usize,
    enqueued: Instant,
    background: bool,
    reply: oneshot::Sender<Result<Vec<Vec<f32>>, String>>,
}

/// Handle to the batching worker.
#[derive(Clone)]
pub struct EmbedQueue {
    tx: mpsc::Sender<Job>,
    queued_tokens: Arc<AtomicUsize>,
    queued_jobs: Arc<AtomicUsize>,
    /// Seconds per token of recent batches (f64 bits; 0 = not measured yet).
    secs_per_token: Arc<AtomicU64>,
    /// Busy seconds per answered request (see [`Pace`]).
    pace: Arc<Pace>,
    /// Sequences embedded at background priority since start.
    background_sequences: Arc<AtomicU64>,
    /// Jobs taken out unembedded because their caller had gone.
    abandoned: Arc<AtomicU64>,
    limits: QueueLimits,
}

/// What the queue admits.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    /// Tokens one forward pass takes at most (padded).
    pub max_batch_tokens: usize,
    /// Tokens waiting at most.
    pub max_queue_tokens: usize,
    /// Requests waiting at most.
    pub max_queue_requests: usize,
    /// Longest expected wait.
    pub max_wait: Duration,
}

impl QueueLimits {
    /// The queue limits of the service's `limits` section.
    pub fn of(l: &crate::config::Limits) -> Self {
        QueueLimits {
            max_batch_tokens: l.max_batch_tokens,
            max_queue_tokens: l.max_queue_tokens,
            max_queue_requests: l.max_queue_requests,
            max_wait: Duration::from_millis(l.max_queue_wait_ms),
        }
    }
}

impl EmbedQueue {
    /// Start the worker thread.
    pub fn start(model: Arc<E5Model>, limits: QueueLimits) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let q = Self {
            tx,
            queued_tokens: Arc::new(AtomicUsize::new(0)),
            queued_jobs: Arc::new(AtomicUsize::new(0)),
            secs_per_token: Arc::new(AtomicU64::new(0f64.to_bits())),
            pace: Arc::new(Pace::default()),
            background_sequences: Arc::new(AtomicU64::new(0)),
            abandoned: Arc::new(AtomicU64::new(0)),
            limits,
        };
        let shared = Shared {
            queued_tokens: q.queued_tokens.clone(),
            secs_per_token: q.secs_per_token.clone(),
            background_sequences: q.background_sequences.clone(),
            abandoned: q.abandoned.clone(),
        };
        std::thread::Builder::new()
            .name("embed-batcher".into())
            .spawn(move || worker(model, rx, shared, limits.max_batch_tokens))
            .expect("spawn embed worker");
        q
    }

    /// Expected wait behind `queued` tokens and `requests` admitted requests not yet answered
    /// (a request's own work is not waiting: a request on an empty queue is always admitted).
    /// The tokens price encoder time only; the requests, at the measured pace of answers,
    /// price whatever else they wait for (the neighbour search, the decision).
    fn expected_wait(&self, queued: usize, requests: usize) -> Duration {
        let spt = f64::from_bits(self.secs_per_token.load(Ordering::Relaxed));
        let encoder = Duration::from_secs_f64((spt * queued as f64).max(0.0));
        encoder.max(self.pace.wait_behind(requests))
    }

    /// Sequences embedded at background priority since start (exemplar seeding, HTTP jobs and
    /// uploads).
    pub fn background_sequences(&self) -> u64 {
        self.background_sequences.load(Ordering::Relaxed)
    }

    /// Requests taken out unembedded because their caller had gone.
    pub fn abandoned(&self) -> u64 {
        self.abandoned.load(Ordering::Relaxed)
    }

    /// Tokens waiting or being embedded right now.
    pub fn queued_tokens(&self) -> usize {
        self.queued_tokens.load(Ordering::Relaxed)
    }

    /// Embed pre-tokenized sequences; waits for the batch that carries them.
    pub async fn embed(&self, ids: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, ApiError> {
        self.admit(ids)?.wait().await
    }

    /// Admits the sequences (or refuses them at once, as [`EmbedQueue::embed`] would) and
    /// queues them; the caller can do other work before waiting for the vectors.
    pub fn admit(&self, ids: Vec<Vec<u32>>) -> Result<Pending, ApiError> {
        self.submit(ids, false)
    }

    /// Embed at background priority: served only when no request is waiting. Callers submit
    /// one small job at a time (it is not counted against the queue limit, never refused).
    pub async fn embed_background(&self, ids: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, ApiError> {
        self.submit(ids, true)?.wait().await
    }

    fn submit(&self, ids: Vec<Vec<u32>>, background: bool) -> Result<Pending, ApiError> {
        // Background jobs are neither counted against the queue limit nor refused.
        let tokens: usize = if background {
            0
        } else {
            ids.iter().map(Vec::len).sum()
        };
        let max_tokens = self.limits.max_queue_tokens;
        if tokens > max_tokens {
            return Err(ApiError::PayloadTooLarge(format!(
                "request holds {tokens} tokens, more than the queue limit of {max_tokens}"
            )));
        }
        let prev = self.queued_tokens.fetch_add(tokens, Ordering::SeqCst);
        let jobs = if background {
            0
        } else {
            self.queued_jobs.fetch_add(1, Ordering::SeqCst)
        };
        if !background {
            let wait = self.expected_wait(prev, jobs);
            let refuse = if prev + tokens > max_tokens {
                Some(format!(
                    "embedding queue full ({prev} tokens waiting, limit {max_tokens})"
                ))
            } else if jobs >= self.limits.max_queue_requests {
                Some(format!(
                    "embedding queue full ({jobs} requests waiting, limit {})",
                    self.limits.max_queue_requests
                ))
            } else if wait > self.limits.max_wait {
                Some(format!(
                    "expected wait {} ms exceeds the limit of {} ms",
                    wait.as_millis(),
                    self.limits.max_wait.as_millis()
                ))
            } else {
                None
            };
            if let Some(why) = refuse {
                self.queued_tokens.fetch_sub(tokens, Ordering::SeqCst);
                self.queued_jobs.fetch_sub(1, Ordering::SeqCst);
                metrics::counter!("touxiang_queue_rejected_total").increment(1);
                return Err(ApiError::Overloaded {
                    message: format!("{why}; retry after the Retry-After seconds"),
                    retry_after_secs: wait.as_secs_f64().ceil() as u64,
                });
            }
        }
        metrics::gauge!("touxiang_queue_tokens").set((prev + tokens) as f64);
        let (reply, rx) = oneshot::channel();
        let job = Job {
            ids,
            tokens,
            enqueued: Instant::now(),
            background,
            reply,
        };
        // From here the ticket gives the tokens and the request slot back, whatever happens.
        if !background {
            self.pace.admitted(jobs);
        }
        let ticket = Ticket {
            tokens,
            request: !background,
            queued_tokens: self.queued_tokens.clone(),
            queued_jobs: self.queued_jobs.clone(),
            pace: self.pace.clone(),
        };
        if self.tx.send(job).is_err() {
            return Err(ApiError::Backend("embedding worker stopped".into()));
        }
        Ok(Pending { rx, ticket })
    }
}

/// An admitted request's share of the admission budget (its tokens and its request slot),
/// given back when dropped. `/v1/classify` holds it until its answer is built, so requests
/// that wait for the neighbour search or the decision count against the budget as those
/// waiting for the encoder do: offered 400 requests/s, the embedding queue alone had admitted
/// what the neighbour search behind it could not keep up with (42 % answered 429, the admitted
/// p50 5.5 s, p99 21 s).
pub struct Ticket {
    tokens: usize,
    request: bool,
    queued_tokens: Arc<AtomicUsize>,
    queued_jobs: Arc<AtomicUsize>,
    pace: Arc<Pace>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.queued_tokens.fetch_sub(self.tokens, Ordering::SeqCst);
        if self.request {
            let left = self
                .queued_jobs
                .fetch_sub(1, Ordering::SeqCst)
                .saturating_sub(1);
            self.pace.answered(left);
        }
    }
}

/// How fast admitted requests are answered while any is in flight: a moving average of the busy
/// seconds between two answers (idle time between requests does not count). Behind `n`
/// requests a new one waits about `n` times that.
#[derive(Default)]
pub struct Pace {
    state: std::sync::Mutex<PaceState>,
}

#[derive(Default)]
struct PaceState {
    /// Since the last answer, or since the first admission after an idle spell.
    busy_since: Option<Instant>,
    secs_per_answer: f64,
}

impl Pace {
    /// A request was admitted with `before` others in flight.
    pub fn admitted(&self, before: usize) {
        self.admitted_at(before, Instant::now())
    }

    /// A request was answered, `left` others are still in flight.
    pub fn answered(&self, left: usize) {
        self.answered_at(left, Instant::now())
    }

    /// Expected wait behind `requests` in flight (zero until an answer has been measured).
    pub fn wait_behind(&self, requests: usize) -> Duration {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Duration::from_secs_f64(st.secs_per_answer * requests as f64)
    }

    fn admitted_at(&self, before: usize, now: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if before == 0 || st.busy_since.is_none() {
            st.busy_since = Some(now);
        }
    }

    fn answered_at(&self, left: usize, now: Instant) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = st.busy_since {
            let dt = now.saturating_duration_since(t).as_secs_f64();
            st.secs_per_answer = if st.secs_per_answer > 0.0 {
                st.secs_per_answer + COST_ALPHA * (dt - st.secs_per_answer)
            } else {
                dt
            };
        }
        st.busy_since = (left > 0).then_some(now);
    }
}

/// Sequences admitted to the queue ([`EmbedQueue::admit`]); dropping it abandons them.
pub struct Pending {
    rx: oneshot::Receiver<Result<Vec<Vec<f32>>, String>>,
    ticket: Ticket,
}

impl Pending {
    /// Waits for the batch that carries the sequences; the admission budget is given back.
    pub async fn wait(self) -> Result<Vec<Vec<f32>>, ApiError> {
        Ok(self.wait_holding().await?.0)
    }

    /// As [`Pending::wait`], keeping the request's share of the admission budget until the
    /// returned [`Ticket`] is dropped.
    pub async fn wait_holding(self) -> Result<(Vec<Vec<f32>>, Ticket), ApiError> {
        match self.rx.await {
            Ok(r) => r
                .map(|v| (v, self.ticket))
                .map_err(|e| ApiError::Backend(format!("embedding failed: {e}"))),
            Err(_) => Err(ApiError::Backend(
                "embedding worker dropped the request".into(),
            )),
        }
    }
}

fn push(j: Job, fg: &mut VecDeque<Job>, bg: &mut VecDeque<Job>) {
    if j.background {
        bg.push_back(j)
    } else {
        fg.push_back(j)
    }
}

/// Requests first, oldest first, up to one batch worth of tokens (at least one job); when no
/// request waits, one background job.
fn next_batch(fg: &mut VecDeque<Job>, bg: &mut VecDeque<Job>, max_batch_tokens: usize) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    let mut tokens = 0;
    while let Some(j) = fg.front() {
        if !jobs.is_empty() && tokens + j.tokens > max_batch_tokens {
            break;
        }
        tokens += j.tokens;
        jobs.extend(fg.pop_front());
    }
    if jobs.is_empty() {
        jobs.extend(bg.pop_front());
    }
    jobs
}

/// Jobs whose caller has gone (the receiving side of the reply was dropped, e.g. the client
/// disconnected and axum dropped its handler): taken out of `q`, oldest first.
fn take_abandoned(q: &mut VecDeque<Job>) -> Vec<Job> {
    if !q.iter().any(|j| j.reply.is_closed()) {
        return Vec::new();
    }
    let (gone, keep): (Vec<Job>, Vec<Job>) = q.drain(..).partition(|j| j.reply.is_closed());
    q.extend(keep);
    gone
}

/// Counters the worker shares with the handles.
struct Shared {
    queued_tokens: Arc<AtomicUsize>,
    secs_per_token: Arc<AtomicU64>,
    background_sequences: Arc<AtomicU64>,
    abandoned: Arc<AtomicU64>,
}

/// Weight of the newest batch in the seconds-per-token average.
const COST_ALPHA: f64 = 0.2;

fn worker(model: Arc<E5Model>, rx: mpsc::Receiver<Job>, shared: Shared, max_batch_tokens: usize) {
    let queued = &shared.queued_tokens;
    let (mut fg, mut bg) = (VecDeque::new(), VecDeque::new());
    let mut open = true;
    loop {
        if fg.is_empty() && bg.is_empty() {
            match rx.recv() {
                Ok(j) => push(j, &mut fg, &mut bg),
                Err(_) => return,
            }
        }
        // Take whatever else is already waiting.
        while open {
            match rx.try_recv() {
                Ok(j) => push(j, &mut fg, &mut bg),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => open = false,
            }
        }
        // Their tickets went with their callers: only counted here.
        let gone = take_abandoned(&mut fg).len() + take_abandoned(&mut bg).len();
        if gone > 0 {
            shared.abandoned.fetch_add(gone as u64, Ordering::Relaxed);
            metrics::counter!("touxiang_queue_abandoned_total").increment(gone as u64);
        }
        let jobs = next_batch(&mut fg, &mut bg, max_batch_tokens);
        if jobs.is_empty() {
            if !open {
                return;
            }
            continue;
        }
        let all: Vec<Vec<u32>> = jobs.iter().flat_map(|j| j.ids.iter().cloned()).collect();
        let started = Instant::now();
        for j in &jobs {
            metrics::histogram!("touxiang_queue_wait_seconds")
                .record(started.duration_since(j.enqueued).as_secs_f64());
        }
        let result = model.embed_tokenized(&all);
        let secs = started.elapsed().as_secs_f64();
        metrics::histogram!("touxiang_batch_seconds").record(secs);
        let batch_tokens: usize = all.iter().map(Vec::len).sum();
        if batch_tokens > 0 {
            let now = secs / batch_tokens as f64;
            let old = f64::from_bits(shared.secs_per_token.load(Ordering::Relaxed));
            let avg = if old > 0.0 {
                old + COST_ALPHA * (now - old)
            } else {
                now
            };
            shared
                .secs_per_token
                .store(avg.to_bits(), Ordering::Relaxed);
        }
        metrics::histogram!("touxiang_batch_sequences").record(all.len() as f64);
        let mut offset = 0;
        for j in jobs {
            let n = j.ids.len();
            let r = match &result {
                Ok(v) => Ok(v[offset..offset + n].to_vec()),
                Err(e) => Err(e.to_string()),
            };
            offset += n;
            if j.background {
                shared
                    .background_sequences
                    .fetch_add(n as u64, Ordering::Relaxed);
                metrics::counter!("touxiang_queue_background_sequences_total").increment(n as u64);
            }
            let _ = j.reply.send(r);
        }
        metrics::gauge!("touxiang_queue_tokens").set(queued.load(Ordering::Relaxed) as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(tokens: usize, background: bool) -> Job {
        Job {
            ids: vec![vec![0; tokens]],
            tokens,
            enqueued: Instant::now(),
            background,
            reply: oneshot::channel().0,
        }
    }

    #[test]
    fn requests_go_before_background_work_and_batches_respect_the_token_budget() {
        let (mut fg, mut bg) = (VecDeque::new(), VecDeque::new());
        for j in [
            job(5, true),
            job(40, false),
            job(50, false),
            job(30, false),
            job(7, true),
        ] {
            push(j, &mut fg, &mut bg);
        }
        let sizes = |v: Vec<Job>| {
            v.iter()
                .map(|j| (j.tokens, j.background))
                .collect::<Vec<_>>()
        };
        // 40 + 50 fit a 100-token batch, 30 does not.
        assert_eq!(
            sizes(next_batch(&mut fg, &mut bg, 100)),
            vec![(40, false), (50, false)]
        );
        assert_eq!(sizes(next_batch(&mut fg, &mut bg, 100)), vec![(30, false)]);
        // No request left: one background job at a time, in order.
        assert_eq!(sizes(next_batch(&mut fg, &mut bg, 100)), vec![(5, true)]);
        push(job(200, false), &mut fg, &mut bg);
        // A request larger than the budget still runs (alone), ahead of the background job.
        assert_eq!(sizes(next_batch(&mut fg, &mut bg, 100)), vec![(200, false)]);
        assert_eq!(sizes(next_batch(&mut fg, &mut bg, 100)), vec![(7, true)]);
        assert!(next_batch(&mut fg, &mut bg, 100).is_empty());
    }

    #[test]
    fn the_pace_counts_busy_time_between_answers_not_idle_time() {
        let p = Pace::default();
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        assert_eq!(p.wait_behind(10), Duration::ZERO);
        // One request alone: admitted at 0, answered at 12 ms.
        p.admitted_at(0, ms(0));
        p.answered_at(0, ms(12));
        assert_eq!(p.wait_behind(1), Duration::from_millis(12));
        // A second of idle time, then a request answered 12 ms after it came: still 12 ms.
        p.admitted_at(0, ms(1012));
        p.answered_at(0, ms(1024));
        assert_eq!(p.wait_behind(1), Duration::from_millis(12));
        // Under load, answers every 2 ms pull the pace down towards 2 ms per answer.
        p.admitted_at(0, ms(2000));
        for i in 1..=60 {
            p.admitted_at(5, ms(2000 + 2 * i));
            p.answered_at(5, ms(2000 + 2 * i));
        }
        let w = p.wait_behind(100);
        assert!(
            w > Duration::from_millis(190) && w < Duration::from_millis(250),
            "{w:?}"
        );
    }

    #[test]
    fn jobs_whose_caller_has_gone_are_taken_out_and_the_rest_keep_their_order() {
        let mut q = VecDeque::new();
        let mut waiting = Vec::new();
        for (tokens, caller_waits) in [(1, true), (2, false), (3, true), (4, false)] {
            let (reply, rx) = oneshot::channel();
            if caller_waits {
                waiting.push(rx);
            }
            q.push_back(Job {
                ids: vec![vec![0; tokens]],
                tokens,
                enqueued: Instant::now(),
                background: false,
                reply,
            });
        }
        let gone: Vec<usize> = take_abandoned(&mut q).iter().map(|j| j.tokens).collect();
        assert_eq!(gone, vec![2, 4]);
        let left: Vec<usize> = q.iter().map(|j| j.tokens).collect();
        assert_eq!(left, vec![1, 3]);
        assert!(take_abandoned(&mut q).is_empty());
        drop(waiting);
        assert_eq!(take_abandoned(&mut q).len(), 2);
    }
}

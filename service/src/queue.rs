//! The embedding request queue: requests from many clients are batched into shared forward
//! passes (like text-embeddings-inference). The queue is bounded by *tokens*: a request that
//! would push the queued total past the limit is refused at once (429) instead of growing memory.
//! Background work (embedding shipped exemplars on a first start, replays) goes through the same
//! worker at lower priority: it runs only when no request waits, one small job at a time, so a
//! request waits behind at most one background job.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

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
    max_queue_tokens: usize,
}

impl EmbedQueue {
    /// Start the worker thread. `max_batch_tokens` bounds one forward pass (padded tokens);
    /// `max_queue_tokens` bounds everything waiting.
    pub fn start(model: Arc<E5Model>, max_batch_tokens: usize, max_queue_tokens: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let q2 = queued.clone();
        std::thread::Builder::new()
            .name("embed-batcher".into())
            .spawn(move || worker(model, rx, q2, max_batch_tokens))
            .expect("spawn embed worker");
        Self {
            tx,
            queued_tokens: queued,
            max_queue_tokens,
        }
    }

    /// Tokens waiting or being embedded right now.
    pub fn queued_tokens(&self) -> usize {
        self.queued_tokens.load(Ordering::Relaxed)
    }

    /// Embed pre-tokenized sequences; waits for the batch that carries them.
    pub async fn embed(&self, ids: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, ApiError> {
        self.submit(ids, false).await
    }

    /// Embed at background priority: served only when no request is waiting. Callers submit
    /// one small job at a time (it is not counted against the queue limit, never refused).
    pub async fn embed_background(&self, ids: Vec<Vec<u32>>) -> Result<Vec<Vec<f32>>, ApiError> {
        self.submit(ids, true).await
    }

    async fn submit(
        &self,
        ids: Vec<Vec<u32>>,
        background: bool,
    ) -> Result<Vec<Vec<f32>>, ApiError> {
        // Background jobs are neither counted against the queue limit nor refused.
        let tokens: usize = if background {
            0
        } else {
            ids.iter().map(Vec::len).sum()
        };
        if tokens > self.max_queue_tokens {
            return Err(ApiError::PayloadTooLarge(format!(
                "request holds {tokens} tokens, more than the queue limit of {}",
                self.max_queue_tokens
            )));
        }
        let prev = self.queued_tokens.fetch_add(tokens, Ordering::SeqCst);
        if !background && prev + tokens > self.max_queue_tokens {
            self.queued_tokens.fetch_sub(tokens, Ordering::SeqCst);
            metrics::counter!("touxiang_queue_rejected_total").increment(1);
            return Err(ApiError::Overloaded(format!(
                "embedding queue full ({prev} tokens waiting, limit {}); retry shortly",
                self.max_queue_tokens
            )));
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
        if self.tx.send(job).is_err() {
            self.queued_tokens.fetch_sub(tokens, Ordering::SeqCst);
            return Err(ApiError::Backend("embedding worker stopped".into()));
        }
        match rx.await {
            Ok(r) => r.map_err(|e| ApiError::Backend(format!("embedding failed: {e}"))),
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

fn worker(
    model: Arc<E5Model>,
    rx: mpsc::Receiver<Job>,
    queued: Arc<AtomicUsize>,
    max_batch_tokens: usize,
) {
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
        metrics::histogram!("touxiang_batch_seconds").record(started.elapsed().as_secs_f64());
        metrics::histogram!("touxiang_batch_sequences").record(all.len() as f64);
        let mut offset = 0;
        for j in jobs {
            let n = j.ids.len();
            let r = match &result {
                Ok(v) => Ok(v[offset..offset + n].to_vec()),
                Err(e) => Err(e.to_string()),
            };
            offset += n;
            queued.fetch_sub(j.tokens, Ordering::SeqCst);
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
}

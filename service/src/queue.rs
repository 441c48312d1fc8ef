//! The embedding request queue: requests from many clients are batched into shared forward
//! passes (like text-embeddings-inference). The queue is bounded by *tokens*: a request that
//! would push the queued total past the limit is refused at once (429) instead of growing memory.

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
        let tokens: usize = ids.iter().map(Vec::len).sum();
        if tokens > self.max_queue_tokens {
            return Err(ApiError::PayloadTooLarge(format!(
                "request holds {tokens} tokens, more than the queue limit of {}",
                self.max_queue_tokens
            )));
        }
        let prev = self.queued_tokens.fetch_add(tokens, Ordering::SeqCst);
        if prev + tokens > self.max_queue_tokens {
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

fn worker(
    model: Arc<E5Model>,
    rx: mpsc::Receiver<Job>,
    queued: Arc<AtomicUsize>,
    max_batch_tokens: usize,
) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut tokens = jobs[0].tokens;
        // Take whatever else is already waiting, up to one batch worth of tokens.
        while tokens < max_batch_tokens {
            match rx.try_recv() {
                Ok(j) => {
                    tokens += j.tokens;
                    jobs.push(j);
                }
                Err(_) => break,
            }
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

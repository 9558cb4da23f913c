//! Text to vectors.
//!
//! A model ([`EmbedModel`]) is synchronous and needs `&mut self`, as fastembed's does.
//! [`Embedder`] puts one model on its own thread and feeds it through a queue: the
//! thread takes every request already waiting (up to a batch limit) and embeds them in
//! as few calls as the limit allows. A lone request is never held back to wait for
//! company.
//!
//! The server's limit is one text per call: on real text of mixed lengths, ONNX
//! Runtime on this kind of machine embeds one text at a time about 1.7x faster than in
//! batches of 32 (BENCHMARKS.md), and short uniform texts gain only ~15% from
//! batching.
//!
//! Embedding never runs on the async runtime: async callers await a reply channel.

mod fastembed_model;
mod files;
mod model;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::telemetry;

pub use fastembed_model::FastEmbedModel;
pub use files::{LoadError, MODEL_FILES, ModelFiles};
pub use model::{EmbedError, EmbedModel};

use crate::memory::EmbeddingSpec;

/// Requests waiting beyond this make their senders wait, which bounds the queue.
const QUEUE_DEPTH: usize = 1024;

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, EmbedError>>;

struct Request {
    texts: Vec<String>,
    reply: Reply,
}

/// A cheap, cloneable handle to the embedding thread. The thread ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Embedder {
    queue: mpsc::Sender<Request>,
    spec: Arc<EmbeddingSpec>,
}

impl Embedder {
    /// Starts the embedding thread. `max_batch` caps how many texts go to the model in
    /// one call when requests pile up.
    pub fn start(model: Box<dyn EmbedModel>, max_batch: usize) -> Self {
        let spec = Arc::new(model.spec().clone());
        let (queue, requests) = mpsc::channel(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("mnemo-embed".into())
            .spawn(move || run(model, requests, max_batch.max(1)))
            .expect("the OS can start the embedding thread");
        Self { queue, spec }
    }

    pub fn spec(&self) -> &EmbeddingSpec {
        &self.spec
    }

    /// Embeds `texts`, waiting without blocking the runtime.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Request { texts, reply })
            .await
            .map_err(|_| EmbedError::Stopped)?;
        answer.await.map_err(|_| EmbedError::Stopped)?
    }

    /// Embeds one text.
    pub async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut vectors = self.embed(vec![text.to_owned()]).await?;
        vectors.pop().ok_or(EmbedError::WrongCount {
            expected: 1,
            actual: 0,
        })
    }

    /// Embeds `texts` from synchronous code. Must not be called on an async runtime
    /// thread.
    pub fn embed_blocking(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .blocking_send(Request { texts, reply })
            .map_err(|_| EmbedError::Stopped)?;
        answer.blocking_recv().map_err(|_| EmbedError::Stopped)?
    }
}

fn run(mut model: Box<dyn EmbedModel>, mut requests: mpsc::Receiver<Request>, max_batch: usize) {
    while let Some(first) = requests.blocking_recv() {
        let mut batch = vec![first];
        let mut texts = batch[0].texts.len();
        while texts < max_batch {
            match requests.try_recv() {
                Ok(request) => {
                    texts += request.texts.len();
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        // What is left waiting once the thread has taken its batch: 0 when it keeps up.
        metrics::gauge!(telemetry::EMBED_QUEUE).set(requests.len() as f64);
        embed_batch(model.as_mut(), batch, max_batch);
    }
}

/// Characters one model call may hold, counted as the call pads them (its count times
/// its longest text). The model pads every text of a call to the longest, and ONNX
/// Runtime keeps the memory arena its largest call needed: 32 texts padded to 256
/// tokens grew the server by about 500 MB for good. About 32 sentences of 200
/// characters.
const MAX_PADDED_CHARS: usize = 32 * 200;

/// Embeds every request's texts and hands each request its share. The texts are
/// sorted by length and cut into calls of at most `max_batch` texts and
/// [`MAX_PADDED_CHARS`], so short texts are not padded to a long one's length and no
/// call is large enough to grow the runtime's memory much.
fn embed_batch(model: &mut dyn EmbedModel, batch: Vec<Request>, max_batch: usize) {
    let texts: Vec<String> = batch.iter().flat_map(|r| r.texts.iter().cloned()).collect();
    let mut order: Vec<usize> = (0..texts.len()).collect();
    order.sort_by_key(|&i| texts[i].len());
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
    let mut result = Ok(());
    let mut start = 0;
    while start < order.len() && result.is_ok() {
        let mut end = start + 1;
        // Sorted ascending, so the last text of a call is its longest.
        while end < order.len()
            && end - start < max_batch.max(1)
            && (end - start + 1) * texts[order[end]].len() <= MAX_PADDED_CHARS
        {
            end += 1;
        }
        let call: Vec<String> = order[start..end]
            .iter()
            .map(|&i| texts[i].clone())
            .collect();
        let started = std::time::Instant::now();
        let embedded = model.embed(&call);
        metrics::histogram!(telemetry::EMBED_DURATION).record(started.elapsed());
        metrics::histogram!(telemetry::EMBED_BATCH).record(call.len() as f64);
        if embedded.is_err() {
            metrics::counter!(telemetry::EMBED_FAILURES).increment(1);
        }
        result = embedded.and_then(|got| {
            if got.len() != call.len() {
                return Err(EmbedError::WrongCount {
                    expected: call.len(),
                    actual: got.len(),
                });
            }
            for (&i, vector) in order[start..end].iter().zip(got) {
                vectors[i] = Some(vector);
            }
            Ok(())
        });
        start = end;
    }
    let result = result.map(|()| vectors.into_iter().flatten().collect::<Vec<_>>());
    match result {
        Ok(vectors) => {
            let mut vectors = vectors.into_iter();
            for request in batch {
                let mine = vectors.by_ref().take(request.texts.len()).collect();
                let _ = request.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            for request in batch {
                let _ = request.reply.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod fake {
    //! A deterministic stand-in model for unit tests of other modules.

    use super::*;

    /// Hashes bytes into a fixed-width unit vector; records the batch sizes it saw.
    pub struct FakeModel {
        pub spec: EmbeddingSpec,
        pub batches: Arc<std::sync::Mutex<Vec<usize>>>,
    }

    impl FakeModel {
        pub fn new(dimension: usize) -> Self {
            Self {
                spec: EmbeddingSpec {
                    model_id: "fake".into(),
                    dimension,
                },
                batches: Arc::default(),
            }
        }
    }

    impl EmbedModel for FakeModel {
        fn spec(&self) -> &EmbeddingSpec {
            &self.spec
        }

        fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.batches.lock().unwrap().push(texts.len());
            Ok(texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0f32; self.spec.dimension];
                    for (i, b) in t.bytes().enumerate() {
                        v[(i * 31 + b as usize) % self.spec.dimension] += 1.0;
                    }
                    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
                    v.iter_mut().for_each(|x| *x /= norm);
                    v
                })
                .collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::FakeModel;
    use super::*;

    /// Each caller gets back exactly its own vectors, in order, when requests are
    /// batched together.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_get_their_own_vectors() {
        let model = FakeModel::new(16);
        let embedder = Embedder::start(Box::new(model), 32);
        let mut reference = FakeModel::new(16);
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let embedder = embedder.clone();
                tokio::spawn(async move {
                    let texts = vec![format!("text {i}"), format!("other {i}")];
                    (texts.clone(), embedder.embed(texts).await.unwrap())
                })
            })
            .collect();
        for task in tasks {
            let (texts, vectors) = task.await.unwrap();
            assert_eq!(vectors, reference.embed(&texts).unwrap());
        }
    }

    /// Requests that pile up while the model is busy reach it as one batch.
    #[test]
    fn queued_requests_are_batched() {
        let model = FakeModel::new(8);
        let batches = model.batches.clone();
        let (queue, requests) = mpsc::channel(16);
        let mut answers = Vec::new();
        for i in 0..5 {
            let (reply, answer) = oneshot::channel();
            queue
                .try_send(Request {
                    texts: vec![format!("t{i}")],
                    reply,
                })
                .unwrap();
            answers.push(answer);
        }
        drop(queue);
        run(Box::new(model), requests, 3);
        assert_eq!(*batches.lock().unwrap(), vec![3, 2]);
        for answer in answers {
            assert_eq!(answer.blocking_recv().unwrap().unwrap().len(), 1);
        }
    }

    /// A request larger than the batch limit (a batch store) reaches the model in
    /// calls of at most that many texts, and still gets all its vectors in order.
    #[test]
    fn large_requests_are_split() {
        let texts: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
        assert_eq!(model_calls(&texts, 4), vec![4, 4, 2]);
    }

    /// Runs one request of `texts` through the embedding loop with a batch limit of
    /// `limit`; checks its vectors and returns the sizes of the model calls.
    fn model_calls(texts: &[String], limit: usize) -> Vec<usize> {
        let model = FakeModel::new(8);
        let batches = model.batches.clone();
        let (queue, requests) = mpsc::channel(4);
        let (reply, answer) = oneshot::channel();
        let texts = texts.to_vec();
        queue
            .try_send(Request {
                texts: texts.clone(),
                reply,
            })
            .unwrap();
        drop(queue);
        run(Box::new(model), requests, limit);
        let vectors = answer.blocking_recv().unwrap().unwrap();
        assert_eq!(vectors, FakeModel::new(8).embed(&texts).unwrap());
        batches.lock().unwrap().clone()
    }

    /// Texts are grouped by length: short ones are not padded to a long one's length,
    /// and long ones go a few per call; every request still gets its vectors in order.
    #[test]
    fn calls_are_bounded_by_padded_length() {
        let long = |i: usize| format!("{i}{}", "x".repeat(3000));
        let texts = vec![
            long(1),
            "a".into(),
            long(2),
            "b".into(),
            "c".into(),
            long(3),
            "d".into(),
        ];
        assert_eq!(model_calls(&texts, 32), vec![4, 2, 1]);
    }
}

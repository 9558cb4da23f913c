//! What a model is to the rest of Mnemo: a synchronous function from texts to unit
//! vectors, with a spec that names it. fastembed's is one; the tests' fake is another.

use thiserror::Error;

use crate::memory::EmbeddingSpec;

/// A synchronous embedding model.
pub trait EmbedModel: Send + 'static {
    /// Which model this is and how wide its vectors are.
    fn spec(&self) -> &EmbeddingSpec;
    /// One L2-normalised vector per text, in order.
    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

#[derive(Debug, Error, Clone)]
pub enum EmbedError {
    #[error("the embedding model failed: {0}")]
    Model(String),
    #[error("the embedding model returned {actual} vectors for {expected} texts")]
    WrongCount { expected: usize, actual: usize },
    #[error("the embedding worker has stopped")]
    Stopped,
}

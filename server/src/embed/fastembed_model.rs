//! all-MiniLM-L6-v2 (or any BERT-style sentence encoder) run by fastembed on ONNX
//! Runtime, loaded from local files only.

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};

use super::files::{LoadError, ModelFiles};
use super::model::{EmbedError, EmbedModel};
use crate::memory::EmbeddingSpec;

/// sentence-transformers truncates all-MiniLM-L6-v2 input at 256 tokens; longer inputs
/// only cost time, since the model was trained on that length.
const MAX_TOKENS: usize = 256;

/// A fastembed text model.
pub struct FastEmbedModel {
    model: TextEmbedding,
    spec: EmbeddingSpec,
}

impl FastEmbedModel {
    /// Loads the model. `model_id` is the name the database pins; the dimension is
    /// measured from the model's own output, so it cannot be misconfigured.
    pub fn load(files: &ModelFiles, model_id: &str, threads: usize) -> Result<Self, LoadError> {
        files.check()?;
        // Loading the library ourselves first turns ort's panic on a bad or old
        // library into an error.
        let _environment = ort::init_from(&files.ort_dylib).map_err(|e| LoadError::Runtime {
            path: files.ort_dylib.clone(),
            message: e.to_string(),
        })?;

        let tokenizer = TokenizerFiles {
            tokenizer_file: files.read("tokenizer.json")?,
            config_file: files.read("config.json")?,
            special_tokens_map_file: files.read("special_tokens_map.json")?,
            tokenizer_config_file: files.read("tokenizer_config.json")?,
        };
        // MiniLM is trained with mean pooling; fastembed's user-defined default (CLS)
        // gives silently worse vectors.
        let definition = UserDefinedEmbeddingModel::new(files.read("model.onnx")?, tokenizer)
            .with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new()
            .with_max_length(MAX_TOKENS)
            .with_intra_threads(threads.max(1));
        let broken = |e: fastembed::Error| LoadError::Model {
            path: files.model_dir.clone(),
            message: e.to_string(),
        };
        let mut model =
            TextEmbedding::try_new_from_user_defined(definition, options).map_err(broken)?;

        let probe = model.embed(["dimension probe"], None).map_err(broken)?;
        let dimension = probe.first().map_or(0, Vec::len);
        if dimension == 0 {
            return Err(LoadError::Model {
                path: files.model_file("model.onnx"),
                message: "the model produced an empty vector".into(),
            });
        }
        Ok(Self {
            model,
            spec: EmbeddingSpec {
                model_id: model_id.to_owned(),
                dimension,
            },
        })
    }
}

impl EmbedModel for FastEmbedModel {
    fn spec(&self) -> &EmbeddingSpec {
        &self.spec
    }

    fn embed(&mut self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        // fastembed pools and L2-normalises.
        self.model
            .embed(texts, Some(texts.len().max(1)))
            .map_err(|e| EmbedError::Model(e.to_string()))
    }
}

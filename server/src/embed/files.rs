//! Where the model and ONNX Runtime live on disk, and the checks that turn a missing
//! or broken file into an error that names it.
//!
//! `scripts/provision.py` fetches and verifies these files (ARCHITECTURE.md, "Model and runtime provisioning"). The server
//! does not hash them at start-up, which would cost more than loading the model; it
//! checks that each is present and lets ONNX Runtime reject a broken one, then says
//! which file it was and how to get a good copy.

use std::path::{Path, PathBuf};

use thiserror::Error;

/// The files a model folder must hold.
pub const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

const FIX: &str = "run `make provision` (or `python3 scripts/provision.py`) to fetch and verify it, \
                   or point MNEMO_MODEL_DIR / ORT_DYLIB_PATH at your own copy";

/// Why the model could not be loaded. Every variant names the file at fault.
#[derive(Debug, Error)]
pub enum LoadError {
    #[error("{what} not found at {path}; {FIX}")]
    Missing { what: &'static str, path: PathBuf },
    #[error("cannot read {path}: {error}; {FIX}")]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("ONNX Runtime at {path} cannot be used: {message}; {FIX}")]
    Runtime { path: PathBuf, message: String },
    #[error("the model at {path} cannot be loaded: {message}; the file may be corrupt: {FIX}")]
    Model { path: PathBuf, message: String },
}

/// The on-disk locations of one embedding model and of the ONNX Runtime library.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Folder holding [`MODEL_FILES`].
    pub model_dir: PathBuf,
    /// `libonnxruntime.so`, version 1.24 or newer.
    pub ort_dylib: PathBuf,
}

impl ModelFiles {
    /// Checks that every file is present, before anything tries to load it (ort panics
    /// on a missing library if it is not given one it can check first).
    pub fn check(&self) -> Result<(), LoadError> {
        require(&self.ort_dylib, "the ONNX Runtime library")?;
        for name in MODEL_FILES {
            require(&self.model_dir.join(name), name_of(name))?;
        }
        Ok(())
    }

    pub fn model_file(&self, name: &str) -> PathBuf {
        self.model_dir.join(name)
    }

    /// Reads one model file, naming it on failure.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, LoadError> {
        let path = self.model_file(name);
        std::fs::read(&path).map_err(|error| LoadError::Unreadable { path, error })
    }
}

fn require(path: &Path, what: &'static str) -> Result<(), LoadError> {
    if path.is_file() {
        Ok(())
    } else {
        Err(LoadError::Missing {
            what,
            path: path.to_path_buf(),
        })
    }
}

fn name_of(file: &str) -> &'static str {
    match file {
        "model.onnx" => "the ONNX model",
        "tokenizer.json" => "the tokenizer",
        "config.json" => "the model config",
        "special_tokens_map.json" => "the special-tokens map",
        _ => "the tokenizer config",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A missing file is reported by its path, with the command that fixes it.
    #[test]
    fn missing_file_names_path_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libonnxruntime.so");
        std::fs::write(&lib, b"x").unwrap();
        for name in MODEL_FILES.iter().skip(1) {
            std::fs::write(dir.path().join(name), b"{}").unwrap();
        }
        let files = ModelFiles {
            model_dir: dir.path().to_path_buf(),
            ort_dylib: lib,
        };
        let message = files.check().unwrap_err().to_string();
        assert!(message.contains("model.onnx"), "{message}");
        assert!(message.contains("make provision"), "{message}");
    }
}

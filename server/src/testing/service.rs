//! The real embedding model, loaded once per process, and memory services over fresh
//! temporary databases. Tests that need vectors use the real all-MiniLM-L6-v2; the
//! fake model stays in `embed`'s own unit tests. Tests that need a second real model
//! of another width (re-embedding) find all-mpnet-base-v2 with [`mpnet_model_dir`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use tempfile::TempDir;

use crate::Config;
use crate::embed::{Embedder, FastEmbedModel};
use crate::service::MemoryService;
use crate::storage::sqlite::{SqliteOptions, SqliteStore};

/// The real all-MiniLM-L6-v2, from the provisioning cache (or `MNEMO_MODEL_DIR` and
/// `ORT_DYLIB_PATH`). Loading takes a fraction of a second; sharing it keeps the
/// suite fast.
pub fn embedder() -> Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER
        .get_or_init(|| {
            let config = Config::for_data_dir(std::env::temp_dir());
            let model = FastEmbedModel::load(&config.model_files(), &config.model_id, 2)
                .unwrap_or_else(|e| panic!("{e}"));
            Embedder::start(Box::new(model), 32)
        })
        .clone()
}

/// The id a database pins for all-mpnet-base-v2, the tests' second model.
pub const MPNET_MODEL_ID: &str = "sentence-transformers/all-mpnet-base-v2";

/// The folder of all-mpnet-base-v2 (768 dimensions) in the provisioning cache, the
/// real second model the re-embed tests use. Only `make test` provisions it
/// (`scripts/provision.py --extra-model all-mpnet-base-v2`), so a missing file says so.
pub fn mpnet_model_dir() -> PathBuf {
    let dir = Config::for_data_dir(std::env::temp_dir())
        .cache_dir()
        .join("models/all-mpnet-base-v2");
    for name in crate::embed::MODEL_FILES {
        assert!(
            dir.join(name).is_file(),
            "{} is missing: run `make test` (it provisions all-mpnet-base-v2)",
            dir.join(name).display()
        );
    }
    dir
}

/// A memory service over a new database in its own temporary folder.
pub struct TestService {
    pub service: MemoryService,
    /// Holds the database; deleted on drop.
    pub dir: TempDir,
}

impl TestService {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let service = open_service(&dir);
        Self { service, dir }
    }
}

impl Default for TestService {
    fn default() -> Self {
        Self::new()
    }
}

/// Opens (or reopens) the service whose database lives in `dir`.
pub fn open_service(dir: &TempDir) -> MemoryService {
    open_service_with(dir, SqliteOptions::default())
}

/// Opens the service in `dir` with the given store settings.
pub fn open_service_with(dir: &TempDir, options: SqliteOptions) -> MemoryService {
    open_service_in(dir.path(), options)
}

/// Opens the service whose database is `memories.db` in `folder`.
pub fn open_service_in(folder: &Path, options: SqliteOptions) -> MemoryService {
    let embedder = embedder();
    let path = folder.join("memories.db");
    let store = SqliteStore::open(&path, embedder.spec(), options).unwrap();
    MemoryService::new(Arc::new(store), embedder)
}

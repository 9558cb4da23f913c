//! Fixtures shared by the server's integration tests: the real embedding model,
//! loaded once per test binary, and services over fresh temporary databases.

#![allow(dead_code)]

use std::sync::OnceLock;

use mnemo_server::Config;
use mnemo_server::embed::{Embedder, FastEmbedModel};
use mnemo_server::service::{DEFAULT_MAX_CONTENT_BYTES, MemoryService};
use mnemo_server::store::{Store, StoreOptions};
use tempfile::TempDir;

/// The real all-MiniLM-L6-v2, from the provisioning cache (or MNEMO_MODEL_DIR and
/// ORT_DYLIB_PATH). Loading takes a fraction of a second; sharing it keeps the suite fast.
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

/// A memory service over a new database in its own temporary folder.
pub struct TestService {
    pub service: MemoryService,
    pub dir: TempDir,
}

impl TestService {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let service = open_service(&dir);
        Self { service, dir }
    }
}

/// Opens (or reopens) the service whose database lives in `dir`.
pub fn open_service(dir: &TempDir) -> MemoryService {
    let embedder = embedder();
    let store = Store::open(
        &dir.path().join("memories.db"),
        embedder.spec(),
        StoreOptions::default(),
    )
    .unwrap();
    MemoryService::new(store, embedder, DEFAULT_MAX_CONTENT_BYTES)
}

//! The pieces of `mnemo-bench`, the REST benchmark harness.
//!
//! * [`realtext`]: the corpus, real sentences from the toolchains' documentation.
//! * [`vectors`]: the harness's own embeddings of it (cached) and the exact top-10
//!   that recall is measured against.
//! * [`spawned`]: a server process the harness starts itself on port 0.
//! * [`report`]: rows, the table, the JSON and `--compare`.

pub mod realtext;
pub mod report;
pub mod spawned;
pub mod vectors;

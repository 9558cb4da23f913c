//! End-to-end tests that cross process boundaries: the provisioning script today; the
//! server with the bridge, real MCP clients and a browser as those arrive.
//!
//! The tests live in `tests/tests/`. This library will hold the fixtures they share.

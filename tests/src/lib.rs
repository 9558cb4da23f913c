//! Shared fixtures for Mnemo's end-to-end tests.

//! API keys and their scopes. Being written.

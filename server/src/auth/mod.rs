//! Authentication: which key a request carries and what it may do.

pub mod keys;

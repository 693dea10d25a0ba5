//! Reale's integration tests: one binary, so the app links once.

mod support;

mod accounts;
mod operations;
mod security;

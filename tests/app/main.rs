//! Reale's integration tests: one binary, so the app links once.

mod support;

mod accounts;
mod contention;
mod conversations;
mod limits;
mod browser;
mod browser_a11y;
mod browser_chat;
mod browser_live;
mod browser_scale;
mod operations;
mod reactions;
mod realtime;
mod scale;
mod search;
mod security;
mod sessions;

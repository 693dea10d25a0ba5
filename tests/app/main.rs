//! Reale's integration tests: one binary, so the app links once.

mod support;
mod voice;

mod accounts;
mod avatars;
mod contention;
mod conversations;
mod files;
mod limits;
mod moderation;
mod browser;
mod browser_a11y;
mod browser_chat;
mod browser_files;
mod browser_live;
mod browser_moderation;
mod browser_pwa;
mod browser_scale;
mod browser_servers;
mod notifications;
mod browser_voice;
mod operations;
mod privacy;
mod push;
mod pwa;
mod profiles;
mod reactions;
mod realtime;
mod scale;
mod search;
mod security;
mod server_roles;
mod server_matrix;
mod servers;
mod sessions;

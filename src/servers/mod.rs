//! Servers: channels and categories, roles and their permissions, invites, moderation
//! and the audit log.

pub mod permissions;

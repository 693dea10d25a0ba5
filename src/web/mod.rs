//! The web layer shared by every domain: the response shell (CSP, security headers,
//! error pages), CSRF guard, assets, the installable app (manifest, service worker,
//! offline page), forms, client facts, rate limits and the route classes they apply
//! to, and the operational endpoints.

pub mod assets;
pub mod csrf;
pub mod form;
pub mod layout;
pub mod ops;
pub mod pwa;
pub mod ratelimit;
pub mod request;
pub mod shell;
pub mod time;
pub mod trace;

pub use form::Form;

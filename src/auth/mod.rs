//! MoltChats identity, login and token rotation.
//!
//! - [`identity`]: the RSA-2048 key and the challenge signature the server checks.
//! - [`credentials`]: the skill's `credentials.json`, plus our refresh-in-flight marker.
//! - [`session`]: the state machine (its transitions in one table, `session/machine.rs`):
//!   register → verify, refresh with crash-safe persistence,
//!   re-auth with `/auth/challenge` when the refresh token is lost, spent or expired.

pub mod credentials;
mod event;
pub mod identity;
pub mod session;

pub use credentials::{Credentials, RawFields};
pub use event::{AuthEvent, AuthHow};
pub use identity::Identity;
pub use session::{AccessToken, AuthSession, RefreshPolicy};

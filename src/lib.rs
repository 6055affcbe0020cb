//! moltlink: a sans-IO client core for the agent social platforms.
//!
//! The core never touches a socket, clock, file or sound card. Every client (chats, dm,
//! spaces, the gateway client, the bridge) implements one driving interface, [`SansIo`]:
//! hosts feed it inputs (`handle_*`) and commands, and drain its outputs with `poll_output`
//! until it answers [`io::Output::Wait`]. Each client owns its event type.
//! Two thin adapters expose the same core: a C ABI (`ffi`) and a WIT component (`component`).

#![warn(missing_docs)]

pub mod audio;
pub mod auth;
pub mod chats;
pub mod dm;
pub mod error;
pub mod gateway;
pub mod io;
pub mod spaces;
/// The shared test driver (tests, benches, fuzzers; the `testkit` feature).
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

#[cfg(not(target_arch = "wasm32"))]
pub mod ffi;

#[cfg(target_arch = "wasm32")]
mod component;

pub use chats::{ChatsClient, ChatsConfig};
pub use dm::{DmClient, DmCommand, DmConfig};
pub use error::{Error, ErrorCode};
pub use spaces::{SpacesClient, SpacesCommand, SpacesConfig};
pub use io::{CallId, Output, RequestId, SansIo, Ticket};

//! moltlink: a sans-IO client core for the agent social platforms.
//!
//! The core never touches a socket, clock, file or sound card. Every client (chats, dm,
//! spaces, the gateway client, the bridge) implements one driving interface, [`SansIo`]:
//! hosts feed it inputs (`handle_*`) and commands, and drain its outputs with `poll_output`
//! until it answers [`io::Output::Wait`]. Each client owns its event type.
//! Two thin adapters expose the same core: a C ABI (`ffi`) and a WIT component (`component`).
//!
//! # A first client
//! Registering an agent: the client asks for its new private key to be stored, then for the
//! register request; the host performs both and feeds the outcomes back. No network is needed
//! to see it (this example runs as a doc test):
//! ```
//! use moltlink::{ChatsClient, ChatsConfig, Output, SansIo};
//!
//! # fn main() -> Result<(), moltlink::Error> {
//! let now_ms = 1_700_000_000_000; // the host's clock; the core never reads one
//! let mut client = ChatsClient::new(ChatsConfig {
//!     api_base: Some("https://chats.example/api/v1".into()),
//!     credentials: None,  // first run: nothing saved yet
//!     seed: [7; 32],      // from a secure random source in real use
//!     refresh: Default::default(),
//! })?;
//! client.register("my_agent", now_ms)?;
//! let request = loop {
//!     match client.poll_output() {
//!         // Store the bytes owner-only and durably, then acknowledge.
//!         Output::Persist { ticket, .. } => client.handle_persisted(ticket, now_ms)?,
//!         Output::Http { request, .. } => break request,
//!         other => panic!("unexpected output {other:?}"),
//!     }
//! };
//! assert_eq!(request.method().as_str(), "POST");
//! assert_eq!(request.uri().to_string(), "https://chats.example/api/v1/agents/register");
//! // A host now sends `request` and calls `client.handle_response(id, response, now_ms)`.
//! # Ok(())
//! # }
//! ```
//! The same loop drives every client ([`DmClient`], [`SpacesClient`], the gateway bridge);
//! hosts for C, Python, Node and OpenClaw wrap it (README, "Install").

#![deny(missing_docs)]

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

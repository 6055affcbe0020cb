//! OpenClaw: the gateway client (an operator WebSocket carrying agent turns) and the bridge
//! that connects a MoltChats agent to an OpenClaw agent session (`moltlink connect`).
//! Wire facts: PROTOCOL.md §4.

pub mod client;
pub mod wire;

pub use client::{GatewayClient, GatewayConfig, GatewayEvent, GatewayTiming, TurnId};
pub use wire::ClientInfo;

#[cfg(test)]
mod tests;

//! OpenClaw: the gateway client (an operator WebSocket carrying agent turns) and the bridge
//! that connects a MoltChats agent to an OpenClaw agent session (`moltlink connect`).
//! Wire facts: PROTOCOL.md §4.

pub mod bridge;
pub mod client;
pub mod config;
pub mod prompt;
pub mod wire;

pub use client::{GatewayClient, GatewayConfig, GatewayEvent, GatewayTiming, TurnId};
pub use bridge::{Bridge, BridgeConfig, BridgeEvent, ConnectorEvent};
pub use config::{ConnectorSettings, LogLevel};
pub use wire::ClientInfo;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod bridge_tests;

//! `moltlink connect`: the MoltChats connector as a long-lived daemon for a process manager.
//! Configuration as the MoltChats skill describes it (`~/.config/moltchats/connector.json` and
//! the env overrides); credentials from the usual store; leveled logs on stdout; SIGTERM and
//! SIGINT stop it cleanly (exit 0). It exits 1 when it cannot go on without the human (auth
//! failed, quarantined, the gateway refused the token or protocol). All logic is in the core
//! (`moltlink::gateway::Bridge`); this file reads files, env and signals, and prints.

use super::host::{NativeHost, now_ms};
use super::store;
use clap::Args;
use moltlink::chats::{ChatsEvent, RealtimeEvent};
use moltlink::gateway::{Bridge, BridgeConfig, BridgeEvent, ClientInfo, ConnectorSettings, GatewayConfig, GatewayEvent, GatewayTiming, LogLevel};
use moltlink::auth::AuthEvent;
use moltlink::gateway::ConnectorEvent;
use moltlink::io::CallEvent;
use moltlink::ChatsConfig;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

#[derive(Args)]
pub struct ConnectArgs {
    /// The connector configuration (default `~/.config/moltchats/connector.json`; optional).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The MoltChats credentials file (default `~/.config/moltchats/credentials.json`).
    #[arg(long)]
    credentials: Option<PathBuf>,
}

fn default_config_path() -> PathBuf {
    store::default_credentials_path().with_file_name("connector.json")
}

pub fn run(args: ConnectArgs) -> Result<(), String> {
    let config_path = args.config.unwrap_or_else(default_config_path);
    let file = store::read(&config_path)?;
    let settings = ConnectorSettings::resolve(file.as_deref(), |k| std::env::var(k).ok()).map_err(|e| e.to_string())?;
    let level = settings.log_level;
    let log = move |at: LogLevel, message: &str| {
        if at >= level {
            use std::io::Write;
            let ts = humantime_now();
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{ts} {:<5} {message}", at.as_str().to_uppercase());
            let _ = out.flush();
        }
    };
    let credentials_path = args.credentials.unwrap_or_else(store::default_credentials_path);
    let mut host = NativeHost::new(credentials_path.clone());
    let credentials = host.load_credentials()?.ok_or_else(|| {
        format!("no MoltChats credentials at {}: register first (`moltlink chats register`)", credentials_path.display())
    })?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no secure random source: {e}"))?;
    let mut gateway_seed = seed;
    gateway_seed[0] ^= 0x5a;
    let gateway = GatewayConfig {
        url: settings.gateway_url.clone(),
        token: settings.token.clone(),
        session_key: settings.session_key.clone(),
        client: ClientInfo { version: env!("CARGO_PKG_VERSION").into(), platform: std::env::consts::OS.into(), display_name: None },
        seed: gateway_seed,
        timing: GatewayTiming::default(),
            };
    let mut bridge = Bridge::new(BridgeConfig {
        chats: ChatsConfig { api_base: settings.api_base.clone(), credentials: Some(credentials), seed, refresh: Default::default() },
        ws_base: settings.ws_base.clone(),
        gateway,
        auto_subscribe_dms: settings.auto_subscribe_dms,
        server_ids: settings.server_ids.clone(),
        server_channels: settings.server_channels.clone(),
        friends_refresh_ms: 300_000,
    })
    .map_err(|e| format!("{e} ({})", credentials_path.display()))?;

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).map_err(|e| format!("cannot watch signals: {e}"))?;
    }
    host.stop = Some(Arc::clone(&stop));
    host.on_event = Box::new(move |event| {
        let (at, message) = describe(event);
        log(at, &message);
    });
    log(
        LogLevel::Info,
        &format!(
            "moltlink connect {}: gateway {} session {}, MoltChats {}, config {}",
            env!("CARGO_PKG_VERSION"),
            settings.gateway_url,
            settings.session_key,
            bridge.chats().api_base().to_owned(),
            if file.is_some() { config_path.display().to_string() } else { "defaults (no connector.json)".into() }
        ),
    );
    bridge.start(now_ms()).map_err(|e| e.to_string())?;
    // Runs until a signal (Err "stopped") or an event that needs the human.
    let outcome = host.run_until(&mut bridge, Duration::from_secs(10 * 365 * 86_400), is_fatal);
    bridge.stop(now_ms());
    let _ = host.run_until(&mut bridge, Duration::from_secs(2), |_| false); // send the closes
    match outcome {
        Err(e) if e == super::host::STOPPED => {
            log(LogLevel::Info, "stopped by signal; connections closed");
            Ok(())
        }
        Err(e) => Err(e),
        Ok(_) => Err(bridge.fatal().unwrap_or("stopped by a fatal event").to_owned()),
    }
}

fn is_fatal(event: &ConnectorEvent) -> bool {
    matches!(
        event,
        ConnectorEvent::Chats(ChatsEvent::Auth(AuthEvent::AuthFailed { .. })) | ConnectorEvent::Chats(ChatsEvent::Realtime(RealtimeEvent::RealtimeFatal { .. })) | ConnectorEvent::Gateway(GatewayEvent::GatewayFatal { .. })
    )
}

fn humantime_now() -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(now_ms());
    humantime::format_rfc3339_millis(t).to_string()
}

/// One log line per event, with its level. Remote text (message content, display names) is
/// never logged: it is untrusted and private; names are.
pub fn describe(event: &ConnectorEvent) -> (LogLevel, String) {
    use LogLevel::*;
    match event {
        ConnectorEvent::Chats(ChatsEvent::Auth(AuthEvent::Authenticated { username, how, .. })) => (Info, format!("MoltChats: authenticated as @{username} ({how:?})")),
        ConnectorEvent::Chats(ChatsEvent::Auth(AuthEvent::Reauthenticating { reason })) => (Warn, format!("MoltChats: re-authenticating with the private key ({reason})")),
        ConnectorEvent::Chats(ChatsEvent::Auth(AuthEvent::AuthRetrying { attempt, error, .. })) => (Warn, format!("MoltChats: auth attempt {attempt} failed ({error}); retrying")),
        ConnectorEvent::Chats(ChatsEvent::Auth(AuthEvent::AuthFailed { error })) => (Error, format!("MoltChats: authentication failed: {error}")),
        ConnectorEvent::Chats(ChatsEvent::Call(CallEvent::CallFailed { call_id, error })) => (Warn, format!("MoltChats: call #{call_id} failed: {error}")),
        ConnectorEvent::Chats(ChatsEvent::Realtime(rt)) => match rt {
            RealtimeEvent::Connected { .. } => (Info, "MoltChats: socket connected (online)".into()),
            RealtimeEvent::Disconnected { code, reason, .. } => (Warn, format!("MoltChats: socket closed ({code} {reason}); reconnecting")),
            RealtimeEvent::RealtimeFatal { code, reason } => (Error, format!("MoltChats: socket closed for good ({code} {reason})")),
            RealtimeEvent::Subscribed { channel } => (Debug, format!("MoltChats: subscribed to {channel}")),
            RealtimeEvent::Message { channel, message, own, backfilled, .. } => (
                Debug,
                format!(
                    "MoltChats: message {} in {channel} from @{} ({} chars{}{})",
                    message.id.as_deref().unwrap_or("?"),
                    message.agent.get().and_then(|a| a.username.as_deref()).unwrap_or("?"),
                    message.content.as_deref().map_or(0, |c| c.chars().count()),
                    if *own { ", ours" } else { "" },
                    if *backfilled { ", backfilled" } else { "" }
                ),
            ),
            RealtimeEvent::MessageSent { channel, id, .. } => (Debug, format!("MoltChats: message {id} stored in {channel}")),
            RealtimeEvent::SendFailed { channel, code, message, .. } => (Warn, format!("MoltChats: send to {channel} failed: {code} {message}")),
            RealtimeEvent::ServerError { code, message, .. } => (Warn, format!("MoltChats: server error {code}: {message}")),
            // Context, presence, typing: only their kind (context carries other agents' text).
            other => {
                let kind = serde_json::to_value(other).ok().and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
                (Debug, format!("MoltChats: {} event", kind.as_deref().unwrap_or("realtime")))
            }
        },
        ConnectorEvent::Chats(ChatsEvent::Throttled { bucket, until_ms, .. }) => {
            (Debug, format!("MoltChats: waiting {} ms for the {bucket} limit", until_ms.saturating_sub(now_ms())))
        }
        ConnectorEvent::Gateway(g) => describe_gateway(g),
        ConnectorEvent::Bridge(b) => describe_bridge(b),
        ConnectorEvent::Chats(ChatsEvent::Call(CallEvent::CallSucceeded { .. })) | ConnectorEvent::Chats(_) => (Debug, "MoltChats: call succeeded".into()),
    }
}

pub fn describe_gateway(event: &GatewayEvent) -> (LogLevel, String) {
    use LogLevel::*;
    match event {
        GatewayEvent::GatewayConnected { protocol, tick_interval_ms, server_version, .. } => (
            Info,
            format!("OpenClaw: connected (protocol {protocol}, tick {tick_interval_ms} ms, gateway {})", server_version.as_deref().unwrap_or("?")),
        ),
        GatewayEvent::GatewayDisconnected { code, reason, retry_at_ms } => {
            (Warn, format!("OpenClaw: disconnected ({code} {reason}); reconnecting in {} ms", retry_at_ms.saturating_sub(now_ms())))
        }
        GatewayEvent::GatewayFatal { code, message } => (Error, format!("OpenClaw: refused ({code}): {message}")),
        GatewayEvent::GatewayProtocolError { message } => (Warn, format!("OpenClaw: bad frame ignored: {message}")),
        GatewayEvent::TurnStarted { turn, run_id, status } => (Debug, format!("OpenClaw: turn {turn} is run {run_id} ({status})")),
        GatewayEvent::TurnReply { turn, text, .. } => (Debug, format!("OpenClaw: turn {turn} replied ({} chars)", text.chars().count())),
        GatewayEvent::TurnRetrying { turn, attempt } => (Warn, format!("OpenClaw: resending turn {turn} (attempt {attempt}, same idempotency key)")),
        GatewayEvent::TurnFailed { turn, reason, .. } => (Warn, format!("OpenClaw: turn {turn} failed: {reason}")),
    }
}

pub fn describe_bridge(event: &BridgeEvent) -> (LogLevel, String) {
    use LogLevel::*;
    match event {
        BridgeEvent::MessageForwarded { turn, channel, from, dm, .. } => (
            Info,
            format!("bridge: {} from @{} in {channel} -> agent (turn {turn})", if *dm { "DM" } else { "message" }, from.as_deref().unwrap_or("?")),
        ),
        BridgeEvent::ReplyPosted { turn, channel, chars, .. } => (Info, format!("bridge: reply to turn {turn} posted to {channel} ({chars} chars)")),
        BridgeEvent::ReplySkipped { turn, channel } => (Info, format!("bridge: agent chose not to reply to turn {turn} in {channel}")),
        BridgeEvent::ReplyFailed { turn, channel, reason } => (Warn, format!("bridge: no reply for turn {turn} in {channel}: {reason}")),
        BridgeEvent::FriendRequestForwarded { turn, request_id, from } => {
            (Info, format!("bridge: friend request {request_id} from @{} -> agent (turn {turn})", from.as_deref().unwrap_or("?")))
        }
        BridgeEvent::FriendRequestDecided { request_id, from, accept } => (
            Info,
            format!("bridge: friend request {request_id} from @{} {}", from.as_deref().unwrap_or("?"), if *accept { "accepted" } else { "rejected" }),
        ),
        BridgeEvent::FriendRequestUndecided { request_id, .. } => (Warn, format!("bridge: agent did not decide friend request {request_id}; left pending")),
        BridgeEvent::DmSubscribed { channel, friend } => (Info, format!("bridge: subscribed DM {channel} with @{}", friend.as_deref().unwrap_or("?"))),
        BridgeEvent::ChannelsSubscribed { channels, server_id } => {
            (Info, format!("bridge: subscribed {} channel(s){}", channels.len(), server_id.as_ref().map(|s| format!(" of server {s}")).unwrap_or_default()))
        }
        BridgeEvent::BridgeWarning { message } => (Warn, format!("bridge: {message}")),
    }
}

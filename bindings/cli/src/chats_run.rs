//! Runs a `moltlink chats …` subcommand: a REST command (or a socket trust op) to its one
//! outcome, `send` over the socket to its ack, `listen` until the time is up. Output: with
//! `--json` ONE JSON document on stdout, the server's body as sent (`--typed`: the core's typed
//! result); without it, readable lines (`chats_print`). Failures go to stderr, exit code 1.

use super::chats_cli::SocialCommand;
use super::chats_print::render;
use super::host::{NativeHost, now_ms};
use super::{Common, open};
use moltlink::ChatsClient;
use moltlink::auth::AuthEvent;
use moltlink::chats::{ChatsCommand, ChatsEvent, RealtimeEvent};
use moltlink::io::CallEvent;

/// Run one subcommand to its outcome and print it.
pub fn run(command: SocialCommand) -> Result<(), String> {
    match command {
        SocialCommand::Send { channel_id, text, rest: false, ws_base, common } => return send_ws(&channel_id, &text, ws_base, &common),
        SocialCommand::Listen { channels, seconds, ws_base, common } => return listen(&channels, seconds, ws_base, &common),
        _ => {}
    }
    let (command, common) = command.into_parts()?;
    let event = if command.is_socket_op() { over_socket(command, &common)? } else { over_rest(command, &common)? };
    print_outcome(&common, event)
}

/// Is this the end of call `call`: its result, its failure, or a failed login?
fn ends(call: u64, e: &ChatsEvent) -> bool {
    match e {
        ChatsEvent::CommandSucceeded { call_id, .. } | ChatsEvent::Call(CallEvent::CallFailed { call_id, .. }) => *call_id == call,
        ChatsEvent::Auth(AuthEvent::AuthFailed { .. }) | ChatsEvent::Realtime(RealtimeEvent::RealtimeFatal { .. }) => true,
        _ => false,
    }
}

fn over_rest(command: ChatsCommand, common: &Common) -> Result<ChatsEvent, String> {
    let (mut client, mut host) = open(common)?;
    let call = client.command(command, now_ms()).map_err(|e| e.to_string())?;
    host.run_until(&mut client, common.limit(), |e| ends(call, e))
}

/// A trust op (`vouch`, `vouch_revoke`, `flag`): connect the socket first, then ask.
fn over_socket(command: ChatsCommand, common: &Common) -> Result<ChatsEvent, String> {
    let (mut client, mut host) = realtime_client(std::env::var("MOLTCHATS_WS_BASE").ok(), common)?;
    client.connect(now_ms()).map_err(|e| e.to_string())?;
    // Trust ops need an open socket (the core refuses them otherwise).
    let opened = host.run_until(&mut client, common.limit(), |e| matches!(e, ChatsEvent::Realtime(RealtimeEvent::Connected { .. })) || ends(u64::MAX, e))?;
    if !matches!(opened, ChatsEvent::Realtime(RealtimeEvent::Connected { .. })) {
        return Err(super::describe(&opened));
    }
    let call = client.command(command, now_ms()).map_err(|e| e.to_string())?;
    let event = host.run_until(&mut client, common.limit(), |e| {
        ends(call, e)
            || matches!(e, ChatsEvent::Realtime(RealtimeEvent::TrustSucceeded { call_id, .. } | RealtimeEvent::TrustFailed { call_id, .. }) if *call_id == call)
    });
    disconnect(&mut client, &mut host);
    event
}

/// The outcome: one JSON document or readable lines; a failure becomes the error message.
fn print_outcome(common: &Common, event: ChatsEvent) -> Result<(), String> {
    match event {
        ChatsEvent::CommandSucceeded { op, result, body, .. } => {
            let result = serde_json::to_value(&result).expect("results serialise");
            if !common.json {
                render(&op, &result).iter().for_each(|line| println!("{line}"));
            } else if common.typed {
                println!("{result}");
            } else {
                println!("{body}");
            }
            Ok(())
        }
        ChatsEvent::Call(CallEvent::CallFailed { error, .. }) => Err(error.to_string()),
        // A trust op's answer is the server's ack frame, printed as sent.
        ChatsEvent::Realtime(RealtimeEvent::TrustSucceeded { op, target, ack, .. }) => {
            if common.json {
                println!("{ack}");
            } else {
                println!("{} {target}: acknowledged", op.op());
            }
            Ok(())
        }
        ChatsEvent::Realtime(RealtimeEvent::TrustFailed { code, message, .. }) => Err(format!("{code}: {message}")),
        other => Err(super::describe(&other)),
    }
}

/// One readable line per MoltChats event (never secrets).
pub fn describe(event: &ChatsEvent) -> String {
    match event {
        ChatsEvent::CommandSucceeded { call_id, op, status, .. } => format!("{op} #{call_id} succeeded (HTTP {status})"),
        ChatsEvent::Throttled { call_id, bucket, until_ms, waiting, rejected } => {
            let secs = until_ms.saturating_sub(now_ms()) as f64 / 1000.0;
            let why = if *rejected { "the server said rate limited" } else { "holding back" };
            format!("call #{call_id} waits {secs:.1} s for the {bucket} limit ({why}; {waiting} waiting)")
        }
        ChatsEvent::Realtime(event) => serde_json::to_string(event).expect("events serialise"),
        // Auth and untyped calls: described by the CLI's general `describe`.
        other => serde_json::to_string(other).expect("events serialise"),
    }
}

fn realtime_client(ws_base: Option<String>, common: &Common) -> Result<(ChatsClient, NativeHost<ChatsEvent>), String> {
    let (mut client, host) = open(common)?;
    if let Some(base) = ws_base {
        client.set_ws_base(&base).map_err(|e| e.to_string())?;
    }
    Ok((client, host))
}

/// Close the socket politely (a short run lets the close frame go out).
fn disconnect(client: &mut ChatsClient, host: &mut NativeHost<ChatsEvent>) {
    client.disconnect(now_ms());
    let _ = host.run_until(client, std::time::Duration::from_millis(200), |_| false);
}

/// `send` over the socket: connect, send, wait for the ack (or a definite failure).
fn send_ws(channel: &str, text: &str, ws_base: Option<String>, common: &Common) -> Result<(), String> {
    let (mut client, mut host) = realtime_client(ws_base, common)?;
    let now = now_ms();
    client.connect(now).map_err(|e| e.to_string())?;
    let send = client.send_message(channel, text, None, now).map_err(|e| e.to_string())?;
    let event = host.run_until(&mut client, common.limit(), |e| match e {
        ChatsEvent::Realtime(RealtimeEvent::MessageSent { send_id, .. } | RealtimeEvent::SendFailed { send_id, .. }) => *send_id == send,
        ChatsEvent::Realtime(RealtimeEvent::RealtimeFatal { .. }) | ChatsEvent::Auth(AuthEvent::AuthFailed { .. }) => true,
        _ => false,
    })?;
    disconnect(&mut client, &mut host);
    match event {
        ChatsEvent::Realtime(RealtimeEvent::MessageSent { ref id, ref timestamp, .. }) => {
            if common.json {
                println!("{}", serde_json::to_string(&event).expect("events serialise"));
            } else {
                println!("sent {id} at {}", timestamp.as_deref().unwrap_or_default());
            }
            Ok(())
        }
        ChatsEvent::Realtime(RealtimeEvent::SendFailed { code, message, .. }) => Err(format!("{code}: {message}")),
        other => Err(super::describe(&other)),
    }
}

/// `listen`: connect, subscribe, print every event as one JSON line until the time is up.
fn listen(channels: &[String], seconds: Option<u64>, ws_base: Option<String>, common: &Common) -> Result<(), String> {
    let (mut client, mut host) = realtime_client(ws_base, common)?;
    host.on_event = Box::new(|e| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", serde_json::to_string(e).expect("events serialise"));
        let _ = out.flush();
    });
    let now = now_ms();
    client.connect(now).map_err(|e| e.to_string())?;
    client.subscribe(channels, now).map_err(|e| e.to_string())?;
    let limit = std::time::Duration::from_secs(seconds.unwrap_or(u64::MAX / 4));
    let fatal = host.run_until(&mut client, limit, |e| {
        matches!(e, ChatsEvent::Realtime(RealtimeEvent::RealtimeFatal { .. }) | ChatsEvent::Auth(AuthEvent::AuthFailed { .. }))
    });
    match fatal {
        Ok(event) => Err(super::describe(&event)),
        // The time limit is the normal end of `listen --seconds`.
        Err(_) => {
            disconnect(&mut client, &mut host);
            Ok(())
        }
    }
}

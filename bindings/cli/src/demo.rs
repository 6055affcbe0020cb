//! `moltlink demo`: a readable transcript of a whole MoltChats session against the sandbox,
//! offline: register, scheduled rotation, forced rotation, a lost refresh token, and a
//! restart after a crash in the middle of a refresh.

use super::host::{now_ms, NativeHost};
use moltlink::auth::AuthEvent;
use moltlink::chats::ChatsEvent;
use moltlink::io::CallEvent;
use moltlink::{ChatsClient, ChatsConfig, SansIo};
use std::time::{Duration, Instant};

const TOKEN_LIFETIME_S: u64 = 6;

pub fn run() -> Result<(), String> {
    let started = Instant::now();
    let say = move |text: &str| println!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64());
    let config = moltlink_sandbox::SandboxConfig { access_token_lifetime_s: TOKEN_LIFETIME_S, ..Default::default() };
    let server = moltlink_sandbox::serve("127.0.0.1:0", config).map_err(|e| e.to_string())?;
    let api = server.base_urls().moltchats_api;
    let dir = std::env::temp_dir().join(format!("moltlink-demo-{}", std::process::id()));
    let credentials = dir.join("credentials.json");
    say(&format!("sandbox listening: MoltChats API at {api} (access tokens live {TOKEN_LIFETIME_S} s)"));
    say(&format!("credentials file: {}", credentials.display()));

    let open = |label: &str| -> Result<(ChatsClient, NativeHost<ChatsEvent>), String> {
        let mut host = NativeHost::new(credentials.clone());
        let saved = host.load_credentials()?;
        let client = ChatsClient::new(ChatsConfig {
            api_base: Some(api.clone()),
            credentials: saved,
            seed: super::random_seed()?,
            refresh: Default::default(),
        })
        .map_err(|e| e.to_string())?;
        let label = label.to_owned();
        host.on_event = Box::new(move |e| println!("[{:>6.2}s]   {label} event: {}", started.elapsed().as_secs_f64(), super::describe(e)));
        Ok((client, host))
    };
    let authenticated = |e: &ChatsEvent| matches!(e, ChatsEvent::Auth(AuthEvent::Authenticated { .. }) | ChatsEvent::Auth(AuthEvent::AuthFailed { .. }));
    let limit = Duration::from_secs(60);

    say("1. generate an RSA-2048 identity, register @demo_agent, sign the challenge, verify");
    let (mut client, mut host) = open("agent")?;
    client.register("demo_agent", now_ms()).map_err(|e| e.to_string())?;
    expect_auth(host.run_until(&mut client, limit, authenticated)?)?;
    whoami(&mut client, &mut host, &say)?;

    say("2. wait for the scheduled rotation (80% of the token lifetime, with jitter)");
    expect_auth(host.run_until(&mut client, limit, authenticated)?)?;
    let stats = server.sandbox().stats();
    say(&format!("   server saw {} refresh call(s)", stats.refresh_calls));

    say("3. force a rotation twice while a call is sent: one refresh, the call still succeeds");
    let before = server.sandbox().stats().refresh_calls;
    client.refresh(now_ms()).map_err(|e| e.to_string())?;
    client.refresh(now_ms()).map_err(|e| e.to_string())?;
    let call = client.whoami(now_ms()).map_err(|e| e.to_string())?;
    let (mut rotated, mut answered) = (false, false);
    host.run_until(&mut client, limit, |e| {
        rotated |= matches!(e, ChatsEvent::Auth(AuthEvent::Authenticated { .. }));
        answered |= matches!(e, ChatsEvent::Call(CallEvent::CallSucceeded { call_id, .. }) if *call_id == call);
        rotated && answered
    })?;
    say(&format!("   server saw {} refresh call(s) for two refresh commands", server.sandbox().stats().refresh_calls - before));

    say("4. the server revokes every refresh token of the agent (lost/stolen): re-auth with the key");
    let agent_id = client.agent_id().unwrap_or_default().to_owned();
    server.sandbox().revoke_all_refresh_tokens_of(&agent_id);
    client.refresh(now_ms()).map_err(|e| e.to_string())?;
    expect_auth(host.run_until(&mut client, limit, authenticated)?)?;
    drop(client);

    say("5. crash in the middle of a refresh: the marker is saved, the process dies before the response");
    let (mut client, _host) = open("agent")?;
    client.refresh(now_ms()).map_err(|e| e.to_string())?;
    // Drain only the persist of the marker, then "crash" before performing the request.
    loop {
        match client.poll_output() {
            moltlink::Output::Persist { ticket, bytes } => {
                super::store::write_atomic(&credentials, bytes.expose()).map_err(|e| e.to_string())?;
                client.handle_persisted(ticket, now_ms()).map_err(|e| e.to_string())?;
            }
            moltlink::Output::Http { request, .. } => {
                say(&format!("   (process killed with {} {} unsent/unanswered)", request.method(), request.uri().path()));
                break;
            }
            _ => {}
        }
    }
    drop(client);
    say("   restart from the saved file: refreshInFlight is set, so the refresh token is not replayed");
    let (mut client, mut host) = open("restarted")?;
    let reuse_before = server.sandbox().stats().refresh_reuse_rejections;
    client.login(now_ms()).map_err(|e| e.to_string())?;
    expect_auth(host.run_until(&mut client, limit, authenticated)?)?;
    whoami(&mut client, &mut host, &say)?;
    let stats = server.sandbox().stats();
    say(&format!(
        "done: {} register, {} verify, {} challenge, {} refresh calls; spent refresh tokens replayed: {}",
        stats.register_calls,
        stats.verify_calls,
        stats.challenge_calls,
        stats.refresh_calls,
        stats.refresh_reuse_rejections - reuse_before
    ));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn expect_auth(event: ChatsEvent) -> Result<(), String> {
    match event {
        ChatsEvent::Auth(AuthEvent::AuthFailed { error }) => Err(format!("authentication failed: {error}")),
        _ => Ok(()),
    }
}

fn whoami(client: &mut ChatsClient, host: &mut NativeHost<ChatsEvent>, say: &dyn Fn(&str)) -> Result<(), String> {
    let call = client.whoami(now_ms()).map_err(|e| e.to_string())?;
    let event = host.run_until(client, Duration::from_secs(30), |e| {
        matches!(e, ChatsEvent::Call(CallEvent::CallSucceeded { call_id, .. }) | ChatsEvent::Call(CallEvent::CallFailed { call_id, .. }) if *call_id == call)
    })?;
    match event {
        ChatsEvent::Call(CallEvent::CallSucceeded { body, .. }) => {
            say(&format!("   GET /agents/@me → @{} (id {})", body["username"].as_str().unwrap_or("?"), body["id"].as_str().unwrap_or("?")));
            Ok(())
        }
        ChatsEvent::Call(CallEvent::CallFailed { error, .. }) => Err(error.to_string()),
        _ => unreachable!("run_until returns only the events it was asked for"),
    }
}

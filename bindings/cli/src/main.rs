//! `moltlink`: the native CLI. Real networking (ureq), credentials on disk, the sandbox.

mod chats_cli;
mod chats_print;
mod chats_run;
mod connect;
mod audio;
mod demo;
mod device_loop;
mod dm;
mod host;
mod spaces;
mod store;

use clap::{Args, Parser, Subcommand};
use host::{now_ms, NativeHost};
use moltlink::auth::AuthEvent;
use moltlink::chats::ChatsEvent;
use moltlink::io::CallEvent;
use moltlink::{ChatsClient, ChatsConfig};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "moltlink", version, about = "An AI agent's link to MoltChats, Moltbook DMs and Moltspaces")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// MoltChats: identity and login, one subcommand per agent route, the realtime socket.
    #[command(subcommand)]
    Chats(ChatsCommand),
    /// Moltbook private messages: check, request, approve, read, send.
    Dm {
        #[command(subcommand)]
        command: dm::DmCli,
        #[command(flatten)]
        options: dm::DmOptions,
    },
    /// Run the local emulator of all three platforms on loopback.
    Sandbox {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 8787)]
        port: u16,
        /// Access-token lifetime in seconds (the real service uses 14400).
        #[arg(long, default_value_t = 14_400)]
        token_lifetime: u64,
    },
    /// Offline demo: start the sandbox in-process and show login, rotation and re-auth.
    Demo,
    /// The MoltChats connector: bridge MoltChats into an OpenClaw agent session (a daemon;
    /// needs OPENCLAW_AUTH_TOKEN; see README "OpenClaw connector").
    Connect(connect::ConnectArgs),
    /// Voice pipeline on a sound card or WAV files: list devices, run a loopback.
    #[command(subcommand)]
    Audio(audio::AudioCommand),
    /// Moltspaces voice rooms: register, search, create, token, join (voice loop).
    Spaces {
        #[command(subcommand)]
        command: spaces::SpacesCli,
        #[command(flatten)]
        options: spaces::SpacesOptions,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// MoltChats API base URL.
    #[arg(long, env = "MOLTCHATS_API_BASE", global = true)]
    api_base: Option<String>,
    /// Credentials file (the MoltChats skill's format).
    #[arg(long, global = true)]
    credentials: Option<PathBuf>,
    /// Print one JSON document instead of text: the server's answer as sent.
    #[arg(long, global = true)]
    json: bool,
    /// With --json: print the core's typed result (the same structure, snake_case keys).
    #[arg(long, global = true, requires = "json")]
    typed: bool,
    /// Give up after this many seconds (one-shot commands; `listen` runs until --seconds).
    #[arg(long, global = true, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT_S)]
    timeout: u64,
}

/// How long a one-shot command retries (an unreachable server, a slow login) before it gives
/// up with its last error. Daemons (`listen`, `connect`, the voice loop) retry indefinitely.
const DEFAULT_TIMEOUT_S: u64 = 30;

impl Common {
    fn limit(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }
}

#[derive(Subcommand)]
enum ChatsCommand {
    /// Generate an RSA-2048 identity, register it and log in.
    Register {
        #[arg(long)]
        username: String,
        #[command(flatten)]
        common: Common,
    },
    /// Log in with the saved identity.
    Login {
        #[command(flatten)]
        common: Common,
    },
    /// Show the agent's profile (GET /agents/@me).
    Whoami {
        #[command(flatten)]
        common: Common,
    },
    /// Rotate the token pair once.
    Refresh {
        #[command(flatten)]
        common: Common,
    },
    #[command(flatten)]
    Social(chats_cli::SocialCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chats(command) => run_chats(command),
        Command::Sandbox { port, token_lifetime } => run_sandbox(port, token_lifetime),
        Command::Demo => demo::run(),
        Command::Connect(args) => connect::run(args),
        Command::Dm { command, options } => dm::run(command, options),
        Command::Audio(command) => audio::run(command),
        Command::Spaces { command, options } => spaces::run(command, options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn random_seed() -> Result<[u8; 32], String> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("no secure random source: {e}"))?;
    Ok(seed)
}

/// Open the client from the credentials file and a host that saves back to it. Every command
/// but `register` needs a saved identity: a missing file is an error naming the path looked at.
fn open(common: &Common) -> Result<(ChatsClient, NativeHost<ChatsEvent>), String> {
    open_with(common, true)
}

/// A call waiting for a rate-limit window (possibly one a previous process used up).
fn throttled(event: &ChatsEvent) -> Option<String> {
    let ChatsEvent::Throttled { bucket, until_ms, waiting, .. } = event else { return None };
    let secs = until_ms.saturating_sub(now_ms()).div_ceil(1000);
    Some(format!("waiting for the rate limit of `{bucket}` ({waiting} queued), next send allowed in {secs} s"))
}

fn open_with(common: &Common, need_identity: bool) -> Result<(ChatsClient, NativeHost<ChatsEvent>), String> {
    let path = common.credentials.clone().unwrap_or_else(store::default_credentials_path);
    let mut host = NativeHost::new(path.clone());
    host.trouble = throttled;
    let credentials = host.load_credentials()?;
    if need_identity && credentials.is_none() {
        return Err(format!(
            "no agent identity: {} does not exist (run `moltlink chats register --username NAME`, or pass --credentials FILE)",
            path.display()
        ));
    }
    let client = ChatsClient::new(ChatsConfig {
        api_base: common.api_base.clone(),
        credentials,
        seed: random_seed()?,
        refresh: Default::default(),
    })
    .map_err(|e| format!("{} ({})", e, path.display()))?;
    let json = common.json;
    host.on_event = Box::new(move |event| {
        // A failed call is reported once, as the command's error.
        if !json && !matches!(event, ChatsEvent::Call(CallEvent::CallFailed { .. })) {
            eprintln!("{}", describe(event));
        }
    });
    Ok((client, host))
}

fn run_chats(command: ChatsCommand) -> Result<(), String> {
    match command {
        ChatsCommand::Register { username, common } => {
            let (mut client, mut host) = open_with(&common, false)?;
            client.register(&username, now_ms()).map_err(|e| e.to_string())?;
            let event = host.run_until(&mut client, common.limit(), ends_auth)?;
            print_outcome(&common, &event)
        }
        ChatsCommand::Login { common } => {
            let (mut client, mut host) = open(&common)?;
            client.login(now_ms()).map_err(|e| e.to_string())?;
            let event = host.run_until(&mut client, common.limit(), ends_auth)?;
            print_outcome(&common, &event)
        }
        ChatsCommand::Refresh { common } => {
            let (mut client, mut host) = open(&common)?;
            // Logging in may itself rotate (saved refresh token); `refresh` forces one more.
            client.login(now_ms()).map_err(|e| e.to_string())?;
            let first = host.run_until(&mut client, common.limit(), ends_auth)?;
            if matches!(first, ChatsEvent::Auth(AuthEvent::AuthFailed { .. })) {
                return print_outcome(&common, &first);
            }
            client.refresh(now_ms()).map_err(|e| e.to_string())?;
            let event = host.run_until(&mut client, common.limit(), ends_auth)?;
            print_outcome(&common, &event)
        }
        ChatsCommand::Social(command) => chats_run::run(command),
        ChatsCommand::Whoami { common } => {
            let (mut client, mut host) = open(&common)?;
            let call = client.whoami(now_ms()).map_err(|e| e.to_string())?;
            let event = host.run_until(&mut client, common.limit(), |e| match e {
                ChatsEvent::Call(CallEvent::CallSucceeded { call_id, .. }) | ChatsEvent::Call(CallEvent::CallFailed { call_id, .. }) => *call_id == call,
                ChatsEvent::Auth(AuthEvent::AuthFailed { .. }) => true,
                _ => false,
            })?;
            print_outcome(&common, &event)
        }
    }
}

fn ends_auth(event: &ChatsEvent) -> bool {
    matches!(event, ChatsEvent::Auth(AuthEvent::Authenticated { .. }) | ChatsEvent::Auth(AuthEvent::AuthFailed { .. }))
}

fn print_outcome(common: &Common, event: &ChatsEvent) -> Result<(), String> {
    if let ChatsEvent::Call(CallEvent::CallSucceeded { body, .. }) = event {
        // `whoami`: the body as sent (compact with --json, indented without).
        let text = if common.json { serde_json::to_string(body) } else { serde_json::to_string_pretty(body) };
        println!("{}", text.expect("JSON serialises"));
    } else if common.json {
        println!("{}", serde_json::to_string(event).expect("events serialise"));
    } else {
        println!("{}", describe(event));
    }
    match event {
        ChatsEvent::Auth(AuthEvent::AuthFailed { error }) => Err(format!("authentication failed: {error}")),
        ChatsEvent::Call(CallEvent::CallFailed { error, .. }) => Err(error.to_string()),
        _ => Ok(()),
    }
}

/// One readable line per event. Events never carry secrets, so this is safe to log.
pub fn describe(event: &ChatsEvent) -> String {
    let at = |ms: u64| {
        let secs = ms.saturating_sub(now_ms()) / 1000;
        format!("in {}h{:02}m{:02}s", secs / 3600, secs / 60 % 60, secs % 60)
    };
    match event {
        ChatsEvent::Auth(AuthEvent::Registered { agent_id, username }) => format!("registered @{username} as agent {agent_id}"),
        ChatsEvent::Auth(AuthEvent::Authenticated { username, how, expires_at_ms, refresh_at_ms, .. }) => format!(
            "authenticated @{username} via {how:?}; token expires {}, next rotation {}",
            at(*expires_at_ms),
            at(*refresh_at_ms)
        ),
        ChatsEvent::Auth(AuthEvent::Reauthenticating { reason }) => format!("refresh token unusable ({reason}); re-authenticating with the private key"),
        ChatsEvent::Auth(AuthEvent::AuthRetrying { attempt, retry_at_ms, error }) => format!("auth attempt {attempt} failed ({error}); retrying {}", at(*retry_at_ms)),
        ChatsEvent::Auth(AuthEvent::AuthFailed { error }) => format!("authentication failed: {error}"),
        ChatsEvent::Call(CallEvent::CallSucceeded { call_id, status, .. }) => format!("call #{call_id} succeeded (HTTP {status})"),
        ChatsEvent::Call(CallEvent::CallFailed { call_id, error }) => format!("call #{call_id} failed: {error}"),
        event => chats_run::describe(event),
    }
}

fn run_sandbox(port: u16, token_lifetime: u64) -> Result<(), String> {
    let config = moltlink_sandbox::SandboxConfig { access_token_lifetime_s: token_lifetime, ..Default::default() };
    let server = moltlink_sandbox::serve(&format!("127.0.0.1:{port}"), config).map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    let urls = server.base_urls();
    println!("MOLTCHATS_API_BASE={}", urls.moltchats_api);
    println!("MOLTCHATS_WS_BASE={}", urls.moltchats_ws);
    println!("MOLTBOOK_API_BASE={}", urls.moltbook_api);
    println!("MOLTSPACES_API_BASE={}", urls.moltspaces_api);
    println!("OPENAI_API_BASE={}", urls.openai_api);
    println!("ELEVENLABS_API_BASE={}", urls.elevenlabs_api);
    println!("ready");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // Serve until killed (SIGTERM/SIGINT end the process; the OS closes the socket).
    loop {
        std::thread::park();
    }
}

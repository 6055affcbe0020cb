//! The real CLI binary against the sandbox server on loopback: its output never carries the
//! key or tokens, and its credentials file is 0600 and intact after a SIGKILL at any moment
//! of a rotation (atomic temp-file + rename). Part of the secrets suite (host-tests/secrets).
//!
//! `cargo test --release -p moltlink-cli --test secrets_cli`

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

fn moltlink(api: &str, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_moltlink"));
    c.args(args).arg("--api-base").arg(api).env_remove("MOLTCHATS_API_BASE").env_remove("MOLTBOOK_API_BASE");
    c
}

fn run(api: &str, args: &[&str], out: &mut String) -> bool {
    let o = moltlink(api, args).output().expect("run moltlink");
    out.push_str(&String::from_utf8_lossy(&o.stdout));
    out.push_str(&String::from_utf8_lossy(&o.stderr));
    o.status.success()
}

/// The key's PEM lines and the refresh token in the file now.
fn file_secrets(path: &Path) -> Vec<String> {
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).expect("the credentials file is JSON");
    let mut secrets: Vec<String> = saved["privateKey"].as_str().expect("privateKey").lines().filter(|l| !l.starts_with("-----")).map(str::to_owned).collect();
    if let Some(t) = saved["refreshToken"].as_str() {
        secrets.push(t.to_owned());
    }
    secrets
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn cli_output_never_shows_key_or_tokens_and_its_file_survives_kills() {
    let server = moltlink_sandbox::serve("127.0.0.1:0", moltlink_sandbox::SandboxConfig::default()).unwrap();
    let urls = server.base_urls();
    let api = urls.moltchats_api.as_str();
    let dir = std::env::temp_dir().join(format!("moltlink-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let creds = dir.join("credentials.json");
    let c = creds.to_str().unwrap();
    let mut output = String::new();
    let mut secrets = vec![];
    assert!(run(api, &["chats", "register", "--username", "cli_secret", "--credentials", c], &mut output), "{output}");
    assert_eq!(mode(&creds), 0o600, "credentials file is owner-only");
    secrets.extend(file_secrets(&creds));
    for args in [&["chats", "whoami"][..], &["chats", "refresh"], &["chats", "login", "--json"], &["chats", "refresh", "--json"], &["chats", "whoami", "--json"]] {
        let mut a = args.to_vec();
        a.extend(["--credentials", c]);
        assert!(run(api, &a, &mut output), "{a:?}: {output}");
        secrets.extend(file_secrets(&creds));
    }
    // A Moltbook API key through the environment.
    let key = server.sandbox().moltbook_add_agent("CliKeeper", "cli_keeper_x").unwrap();
    for json in [false, true] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_moltlink"));
        cmd.args(["dm", "check", "--api-base", &urls.moltbook_api]).env("MOLTBOOK_API_KEY", &key);
        if json {
            cmd.arg("--json");
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        output.push_str(&String::from_utf8_lossy(&o.stdout));
        output.push_str(&String::from_utf8_lossy(&o.stderr));
    }
    secrets.push(key);
    assert!(output.len() > 100, "the CLI printed something to scan");
    for s in &secrets {
        assert!(!output.contains(s.as_str()), "the CLI printed a secret: {s:.12}…");
    }

    // SIGKILL at random moments of a rotation: the file always parses (old or new), stays
    // 0600, and the agent can still log in without replaying a spent refresh token.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut killed_running = 0;
    for _ in 0..30 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut child = moltlink(api, &["chats", "refresh", "--credentials", c]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_micros(x % 25_000));
        if child.try_wait().unwrap().is_none() {
            killed_running += 1;
        }
        child.kill().ok();
        child.wait().unwrap();
        assert!(!file_secrets(&creds).is_empty(), "the file is intact after a kill");
        assert_eq!(mode(&creds), 0o600);
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{} (a temp file left by a kill) is owner-only", p.display());
    }
    let mut out = String::new();
    assert!(run(api, &["chats", "whoami", "--credentials", c], &mut out), "logs in after the kills: {out}");
    let stats = server.sandbox().stats();
    assert_eq!(stats.refresh_reuse_rejections, 0, "a spent refresh token was replayed");
    println!("{killed_running} of 30 kills hit a running rotation; {} challenge re-auths", stats.challenge_calls);
    assert!(killed_running > 0, "some kills landed mid-run");
    std::fs::remove_dir_all(&dir).ok();
}

//! Stable replay of the committed fuzz corpus and crash regressions: every file under
//! `corpus/<target>/` and `regressions/<target>/` runs through its target body once, so a
//! regression is caught by `cargo test` without nightly or libFuzzer.

#[allow(dead_code)]
#[path = "targets.rs"]
mod targets;

use std::path::Path;

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    files
}

#[test]
fn corpus_and_regressions_replay_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("host-tests/fuzz");
    let mut failures = vec![];
    for (name, body) in targets::TARGETS {
        let mut count = 0;
        for dir in ["corpus", "regressions"] {
            for file in files(&root.join(dir).join(name)) {
                let data = std::fs::read(&file).unwrap();
                count += 1;
                if std::panic::catch_unwind(|| body(&data)).is_err() {
                    failures.push(file.display().to_string());
                }
            }
        }
        assert!(count > 0, "no corpus for fuzz target {name}: run host-tests/fuzz/run.sh and commit corpus/{name}");
        println!("{name}: {count} inputs replayed");
    }
    assert!(failures.is_empty(), "fuzz inputs that panic: {failures:#?}");
}

#[test]
#[ignore]
fn tmp_timing() {
    use moltlink::{ChatsClient, ChatsConfig};
    use moltlink::io::{Output, SansIo};
    let creds = targets::chats_credentials().to_vec();
    let mk = || ChatsClient::new(ChatsConfig { api_base: Some("http://127.0.0.1/moltchats/api/v1".into()), credentials: Some(creds.clone()), seed: [3; 32], refresh: Default::default() }).unwrap();
    let t = std::time::Instant::now();
    for _ in 0..20 { drop(mk()); }
    println!("new: {:?}/iter", t.elapsed() / 20);
    // login, answer everything canned (or 401 for refresh: forces the challenge and a signature)
    for refuse in [false, true] {
        let t = std::time::Instant::now();
        for _ in 0..20 {
            let mut c = mk();
            c.login(targets::T0).unwrap();
            let mut n = 0;
            loop {
                match c.poll_output() {
                    Output::Http { id, request, .. } => {
                        n += 1;
                        let r = if refuse && request.uri().path().ends_with("/auth/refresh") { http::Response::builder().status(401).body(b"{}".to_vec()).unwrap() } else { targets::chats_canned(&request, targets::T0).unwrap_or_else(|| panic!("{}", request.uri())) };
                        c.handle_response(id, r, targets::T0).unwrap();
                    }
                    Output::Persist { ticket, .. } => c.handle_persisted(ticket, targets::T0).unwrap(),
                    Output::Wait { .. } => break,
                    _ => {}
                }
            }
            assert!(c.is_authenticated(targets::T0), "{n}");
        }
        println!("new+login (refuse refresh: {refuse}): {:?}/iter", t.elapsed() / 20);
    }
}

#[test]
#[ignore]
fn tmp_smoke() {
    let mut x: u64 = 0x9E3779B97F4A7C15;
    for (name, body) in targets::TARGETS.iter().filter(|(n, _)| ["spaces_session", "gateway_frames", "bridge", "ffi_spaces", "ffi_bridge", "chats_session", "chats_realtime"].contains(n)) {
        let t = std::time::Instant::now();
        for i in 0..3000 {
            let len = (i % 400) + 1;
            let data: Vec<u8> = (0..len).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect();
            if std::panic::catch_unwind(|| body(&data)).is_err() {
                std::fs::write(format!("/tmp/crash-{name}-{i}"), &data).unwrap();
            }
        }
        println!("{name}: {:?}", t.elapsed() / 3000);
    }
}

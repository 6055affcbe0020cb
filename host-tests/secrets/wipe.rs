//! Keys are wiped before their memory is freed. A global allocator scans every block as it
//! is freed for "needles" (the key's PEM lines and DER bytes) while armed; a needle in a freed
//! block is a copy of the key left behind in memory that the process no longer owns.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use moltlink::SansIo;

struct Scanning;

const MAX_NEEDLES: usize = 8;
const NEEDLE_LEN: usize = 32;
static ARMED: AtomicBool = AtomicBool::new(false);
static NEEDLES: Mutex<[[u8; NEEDLE_LEN]; MAX_NEEDLES]> = Mutex::new([[0; NEEDLE_LEN]; MAX_NEEDLES]);
static COUNT: AtomicUsize = AtomicUsize::new(0);
static FOUND: AtomicUsize = AtomicUsize::new(0);
static SCANNED: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Scanning {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) && layout.size() >= NEEDLE_LEN {
            // SAFETY: the block is still ours until System.dealloc below.
            let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            SCANNED.fetch_add(1, Ordering::Relaxed);
            if let Ok(needles) = NEEDLES.try_lock() {
                let n = COUNT.load(Ordering::Relaxed);
                if needles[..n].iter().any(|needle| block.windows(NEEDLE_LEN).any(|w| w == needle)) {
                    FOUND.fetch_add(1, Ordering::Relaxed);
                    if std::env::var_os("WIPE_TRACE").is_some() {
                        // Where the unwiped copy is freed (scanning off while printing).
                        ARMED.store(false, Ordering::SeqCst);
                        eprintln!("unwiped block of {} bytes freed at:\n{}", layout.size(), std::backtrace::Backtrace::force_capture());
                        ARMED.store(true, Ordering::SeqCst);
                    }
                }
            }
        }
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Scanning = Scanning;

/// Arm the scan for these needles (each cut to its first 32 bytes); returns a guard.
fn arm(needles: &[&[u8]]) {
    let mut slots = NEEDLES.lock().unwrap();
    for (slot, needle) in slots.iter_mut().zip(needles) {
        slot.copy_from_slice(&needle[..NEEDLE_LEN]);
    }
    COUNT.store(needles.len().min(MAX_NEEDLES), Ordering::Relaxed);
    FOUND.store(0, Ordering::Relaxed);
    SCANNED.store(0, Ordering::Relaxed);
    drop(slots);
    ARMED.store(true, Ordering::SeqCst);
}

fn disarm() -> (usize, usize) {
    ARMED.store(false, Ordering::SeqCst);
    (FOUND.load(Ordering::Relaxed), SCANNED.load(Ordering::Relaxed))
}

/// One test at a time uses the allocator's needles.
static SERIAL: Mutex<()> = Mutex::new(());

#[test]
fn a_secret_is_wiped_before_its_memory_is_freed() {
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let needle = b"NEEDLE-secret-value-0123456789abcdef".to_vec();
    let secret = moltlink::io::Secret::new(String::from_utf8(needle.clone()).unwrap());
    arm(&[&needle]);
    drop(secret);
    let (found, scanned) = disarm();
    assert!(scanned >= 1, "the allocator saw the free");
    assert_eq!(found, 0, "Secret<String> freed its bytes without wiping them");
    // The control: a plain String is freed with its bytes intact, so the scan can see them.
    let plain = String::from_utf8(needle.clone()).unwrap();
    arm(&[&needle]);
    drop(plain);
    assert_eq!(disarm().0, 1, "the scanning allocator detects unwiped bytes");
}

/// Credentials go in, a client logs in, signs and is dropped: no copy of the private key is
/// left in freed memory (PEM text, the JSON's copy, or the key's DER).
/// (`WIPE_TRACE=1` prints where a copy was freed.) This once found serde_json's unescape
/// scratch buffer holding the PEM; credentials now unescape the key into a wiped buffer.
#[test]
fn a_client_leaves_no_copy_of_its_private_key_in_freed_memory() {
    use base64::Engine;
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // An identity generated and saved while the scan is off.
    let mut c = moltlink::ChatsClient::new(moltlink::ChatsConfig { api_base: Some(super::API.into()), credentials: None, seed: [4; 32], refresh: Default::default() }).unwrap();
    c.register("wiped", super::T0).unwrap();
    let saved = loop {
        match c.poll_output() {
            moltlink::io::Output::Persist { bytes, .. } => break bytes.expose().clone(),
            moltlink::io::Output::Wait { .. } => panic!("nothing persisted"),
            _ => {}
        }
    };
    drop(c);
    let mut json: serde_json::Value = serde_json::from_slice(&saved).unwrap();
    json["agentId"] = "agent".into();
    json["refreshInFlight"] = true.into(); // forces a challenge signature with the key
    let pem = json["privateKey"].as_str().unwrap().to_owned();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(&body).unwrap();
    let pem_line = pem.lines().nth(5).unwrap().as_bytes().to_vec();
    let der_private = der[der.len() - 200..der.len() - 168].to_vec();
    let credentials = serde_json::to_vec(&json).unwrap();
    drop(json);

    arm(&[&pem_line, &der_private]);
    {
        let mut client = moltlink::ChatsClient::new(moltlink::ChatsConfig {
            api_base: Some(super::API.into()),
            credentials: Some(credentials),
            seed: [5; 32],
            refresh: Default::default(),
        })
        .unwrap();
        client.login(super::T0).unwrap();
        // Answer the challenge so the key signs.
        while let moltlink::io::Output::Http { id, .. } = client.poll_output() {
            let response = http::Response::builder().status(200).body(br#"{"challenge":"c-123"}"#.to_vec()).unwrap();
            let _ = client.handle_response(id, response, super::T0);
            break;
        }
        while !matches!(client.poll_output(), moltlink::io::Output::Wait { .. }) {}
    }
    let (found, scanned) = disarm();
    assert!(scanned > 10, "the allocator scanned the client's frees ({scanned})");
    assert_eq!(found, 0, "{found} freed blocks still held private key material");
}

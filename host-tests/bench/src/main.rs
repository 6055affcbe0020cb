//! `cargo run --release -p moltlink-bench`: RSA-2048 keygen and challenge signing in moltlink
//! vs OpenSSL (`openssl speed`), measured in the same run and reported as ratios.
//! Not a test: numbers vary by machine; only the ratios are meaningful.
//! `cargo run --release -p moltlink-bench -- audio`: the audio pipeline (see `audio.rs`).

mod audio;

use moltlink::auth::Identity;
use rand_core::SeedableRng;
use std::process::Command;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "audio") {
        return audio::main(&args[1..]);
    }
    let mut rng = rand_chacha::ChaCha20Rng::from_seed([1; 32]);

    // Keygen is a random process: average over several keys.
    let keys = 10;
    let start = Instant::now();
    let mut identity = None;
    for _ in 0..keys {
        identity = Some(Identity::generate(&mut rng).expect("keygen"));
    }
    let keygen_ms = start.elapsed().as_secs_f64() * 1000.0 / keys as f64;
    let identity = identity.unwrap();

    let challenge = "0123456789abcdef".repeat(4);
    let mut signs = 0u32;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        std::hint::black_box(identity.sign_challenge(std::hint::black_box(&challenge)));
        signs += 1;
    }
    let sign_ms = start.elapsed().as_secs_f64() * 1000.0 / signs as f64;

    println!("moltlink (rsa crate)  keygen {keygen_ms:8.2} ms/key   sign {sign_ms:6.3} ms/op ({signs} ops)");
    match openssl_sign_ms() {
        Some(openssl_sign) => {
            println!("openssl speed rsa2048                          sign {openssl_sign:6.3} ms/op");
            println!("ratio sign moltlink/openssl: {:.2}x", sign_ms / openssl_sign);
        }
        None => println!("openssl speed unavailable: no sign ratio"),
    }
    match openssl_keygen_ms(keys) {
        Some(openssl_keygen) => {
            println!("openssl genpkey rsa2048        keygen {openssl_keygen:8.2} ms/key (incl. process start)");
            println!("ratio keygen moltlink/openssl: {:.2}x", keygen_ms / openssl_keygen);
        }
        None => println!("openssl genpkey unavailable: no keygen ratio"),
    }
}

/// Parse the `rsa 2048 bits <sign s> <verify s> <sign/s> <verify/s>` line.
fn openssl_sign_ms() -> Option<f64> {
    let out = Command::new("openssl").args(["speed", "-seconds", "3", "rsa2048"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.trim_start().starts_with("rsa 2048 bits") || l.trim_start().starts_with("rsa  2048 bits"))?;
    let sign_seconds: f64 = line.split_whitespace().nth(3)?.trim_end_matches('s').parse().ok()?;
    Some(sign_seconds * 1000.0)
}

fn openssl_keygen_ms(keys: u32) -> Option<f64> {
    let start = Instant::now();
    for _ in 0..keys {
        let ok = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "/dev/null"])
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?
            .success();
        if !ok {
            return None;
        }
    }
    Some(start.elapsed().as_secs_f64() * 1000.0 / keys as f64)
}

//! `cargo run --release -p moltlink-bench`: RSA-2048 keygen and challenge signing in moltlink
//! vs OpenSSL (`openssl speed`: hash + sign per op; `openssl genpkey`), measured in the same
//! run and reported as ratios; `openssl dgst -sha256 -sign` checks both sign alike.
//! Not a test: numbers vary by machine; only the ratios are meaningful.
//! `cargo run --release -p moltlink-bench -- audio`: the audio pipeline (see `audio.rs`).
//! `cargo run --release -p moltlink-bench --bin moltlink-bench -- aec`: the echo canceller (see `aec.rs`).

mod aec;
mod audio;

use moltlink::auth::Identity;
use rand_core::SeedableRng;
use std::process::Command;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "audio") {
        return audio::main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "aec") {
        return aec::main();
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

    // Signing, like for like: SHA-256 + PKCS#1 v1.5 on both sides, per op over many ops.
    // Ours: `sign_challenge` (hash, sign, base64), median of rounds after a warm-up.
    // OpenSSL's: `openssl speed -elapsed rsa2048` (sign of a ready digest) plus `openssl speed
    // -elapsed sha256` on 64-byte blocks (the challenge's size): its hash + sign, in process,
    // many ops, wall clock like ours (without `-elapsed` it divides by CPU time).
    // `openssl dgst -sha256 -sign` on the same key and data checks both sign alike.
    let challenge = "0123456789abcdef".repeat(4);
    let round = |n: u32| {
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(identity.sign_challenge(std::hint::black_box(&challenge)));
        }
        start.elapsed().as_secs_f64() * 1000.0 / n as f64
    };
    round(20);
    let sign_ms = median((0..9).map(|_| round(50)).collect());
    println!("moltlink (rsa crate)  keygen {keygen_ms:8.2} ms/key   sign {sign_ms:6.3} ms/op (SHA-256 + sign + base64; median of 9 × 50)");
    match same_signature(&identity, &challenge) {
        Some(true) => println!("openssl dgst -sha256 -sign on the same key and challenge: the same signature"),
        Some(false) => println!("openssl dgst -sha256 -sign on the same key and challenge: A DIFFERENT SIGNATURE"),
        None => println!("openssl dgst unavailable: signatures not compared"),
    }
    match (openssl_sign_ms(), openssl_sha256_64_ms()) {
        (Some(sign), Some(hash)) => {
            let openssl = sign + hash;
            println!("openssl speed rsa2048 sign + sha256 of 64 bytes        sign {openssl:6.3} ms/op ({sign:.3} + {:.5})", hash);
            println!("ratio sign moltlink/openssl: {:.2}x", sign_ms / openssl);
        }
        _ => println!("openssl speed unavailable: no sign ratio"),
    }
    match openssl_keygen_ms(keys) {
        Some(openssl_keygen) => {
            println!("openssl genpkey rsa2048        keygen {openssl_keygen:8.2} ms/key (incl. process start)");
            println!("ratio keygen moltlink/openssl: {:.2}x", keygen_ms / openssl_keygen);
        }
        None => println!("openssl genpkey unavailable: no keygen ratio"),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Does `openssl dgst -sha256 -sign` on our key and challenge give our signature?
/// (PKCS#1 v1.5 is deterministic.) The key goes to an owner-only temporary file.
fn same_signature(identity: &Identity, challenge: &str) -> Option<bool> {
    use base64::Engine as _;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = std::env::temp_dir().join(format!("moltlink-bench-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let (key, data) = (dir.join("key.pem"), dir.join("challenge"));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&key).ok()?;
        std::io::Write::write_all(&mut f, identity.private_pem().ok()?.expose().as_bytes()).ok()?;
        std::fs::write(&data, challenge).ok()?;
        let out = Command::new("openssl").arg("dgst").arg("-sha256").arg("-sign").arg(&key).arg(&data).output().ok()?;
        out.status.success().then(|| base64::engine::general_purpose::STANDARD.encode(out.stdout) == identity.sign_challenge(challenge))
    })();
    std::fs::remove_dir_all(&dir).ok();
    result
}

/// SHA-256 of one 64-byte block in OpenSSL, from `openssl speed -bytes 64 sha256`
/// (its figures are in 1000s of bytes per second).
fn openssl_sha256_64_ms() -> Option<f64> {
    let out = Command::new("openssl").args(["speed", "-elapsed", "-seconds", "1", "-bytes", "64", "sha256"]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.starts_with("sha256"))?;
    let kbytes: f64 = line.split_whitespace().last()?.trim_end_matches('k').parse().ok()?;
    Some(64.0 / (kbytes * 1000.0) * 1000.0)
}

/// Parse the `rsa 2048 bits <sign s> <verify s> <sign/s> <verify/s>` line.
fn openssl_sign_ms() -> Option<f64> {
    let out = Command::new("openssl").args(["speed", "-elapsed", "-seconds", "3", "rsa2048"]).output().ok()?;
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

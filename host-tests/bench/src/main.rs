//! `cargo run --release -p moltlink-bench`: RSA-2048 keygen and challenge signing in moltlink
//! vs OpenSSL (`openssl dgst -sha256 -sign` on the same key and data, `openssl genpkey`),
//! measured in the same run and reported as ratios.
//! Not a test: numbers vary by machine; only the ratios are meaningful.
//! `cargo run --release -p moltlink-bench -- audio`: the audio pipeline (see `audio.rs`).

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

    // Signing, like for like: SHA-256 + PKCS#1 v1.5 on both sides, same key, same challenge.
    // Ours: `sign_challenge` (hash, sign, base64), per op over many ops, median of rounds after
    // a warm-up. OpenSSL's: `openssl dgst -sha256 -sign` per process run, minus a run that only
    // loads the key (`openssl pkey -noout`): what is left is its hash + sign.
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
    match openssl_dgst_sign_ms(&identity, &challenge) {
        Some(openssl_sign) => {
            println!("openssl dgst -sha256 -sign (same key, same data)  sign {openssl_sign:6.3} ms/op (process runs minus key-load runs; median of 9 × 20)");
            println!("ratio sign moltlink/openssl: {:.2}x", sign_ms / openssl_sign);
        }
        None => println!("openssl dgst unavailable: no sign ratio"),
    }
    if let Some(raw) = openssl_sign_ms() {
        println!("(for reference: openssl speed rsa2048, sign of a ready digest, no hashing: {raw:6.3} ms/op)");
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

/// Per-op time of `openssl dgst -sha256 -sign` on our key and challenge. Each run is a
/// process; a run that only loads the key is timed alike and subtracted. Also checks that
/// both sides produce the same signature (PKCS#1 v1.5 is deterministic).
fn openssl_dgst_sign_ms(identity: &Identity, challenge: &str) -> Option<f64> {
    use base64::Engine as _;
    let dir = std::env::temp_dir().join(format!("moltlink-bench-sign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    let (key, data) = (dir.join("key.pem"), dir.join("challenge"));
    let written = {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&key).ok()?;
        std::io::Write::write_all(&mut f, identity.private_pem().ok()?.expose().as_bytes()).ok()?;
        std::fs::write(&data, challenge).ok()
    };
    let run = |args: &[&std::ffi::OsStr]| Command::new("openssl").args(args).output().ok().filter(|o| o.status.success());
    let sign_args: [&std::ffi::OsStr; 5] = ["dgst".as_ref(), "-sha256".as_ref(), "-sign".as_ref(), key.as_os_str(), data.as_os_str()];
    let load_args: [&std::ffi::OsStr; 4] = ["pkey".as_ref(), "-noout".as_ref(), "-in".as_ref(), key.as_os_str()];
    let result = written.and_then(|_| {
        let ours = identity.sign_challenge(challenge);
        let theirs = run(&sign_args)?.stdout;
        assert_eq!(ours, base64::engine::general_purpose::STANDARD.encode(theirs), "same key, same data: same signature");
        let time = |args: &[&std::ffi::OsStr], n: u32| -> Option<f64> {
            let start = Instant::now();
            for _ in 0..n {
                run(args)?;
            }
            Some(start.elapsed().as_secs_f64() * 1000.0 / n as f64)
        };
        time(&sign_args, 5)?;
        time(&load_args, 5)?;
        let (mut signs, mut loads) = (vec![], vec![]);
        for _ in 0..9 {
            signs.push(time(&sign_args, 20)?);
            loads.push(time(&load_args, 20)?);
        }
        Some((median(signs) - median(loads)).max(0.0))
    });
    std::fs::remove_dir_all(&dir).ok();
    result
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

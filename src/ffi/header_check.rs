//! Keeps the committed `bindings/c/moltlink.h` in step with the exports.
//! `MOLTLINK_BLESS=1 cargo test --release ffi::header` rewrites it.

use std::path::Path;

#[test]
fn header_is_fresh() {
    let crate_dir = env!("CARGO_MANIFEST_DIR");
    let dir = Path::new(crate_dir).join("bindings/c");
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("bindings/c/cbindgen.toml is readable");
    let mut generated = Vec::new();
    // Only src/ffi/ is parsed (not the whole crate), so core constants never leak into the header.
    cbindgen::Builder::new()
        .with_src(Path::new(crate_dir).join("src/ffi/mod.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("header is UTF-8");

    let non_ml: Vec<&str> = generated
        .lines()
        .filter(|l| l.starts_with("#define ") && !l.starts_with("#define ML_") && !l.starts_with("#define MOLTLINK_H"))
        .collect();
    assert!(non_ml.is_empty(), "only ml_ items belong in the header; exclude these in cbindgen.toml: {non_ml:?}");

    let path = dir.join("moltlink.h");
    if std::env::var("MOLTLINK_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write bindings/c/moltlink.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "bindings/c/moltlink.h is stale: run MOLTLINK_BLESS=1 cargo test --release ffi::header"
    );
}

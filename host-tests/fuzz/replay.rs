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

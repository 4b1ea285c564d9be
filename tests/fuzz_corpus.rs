//! Replays the fuzz targets' seed corpus (`fuzz/corpus/<target>/`) through
//! the same functions the fuzz targets call, so that every run of the test
//! suite checks the decoders against it on stable Rust.

#[path = "../fuzz/src/lib.rs"]
mod harness;

use std::path::Path;

#[test]
fn corpus_replays_without_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (name, target) in harness::TARGETS {
        let dir = root.join(name);
        let mut count = 0;
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            target(&data);
            // Every prefix too: truncation is the most common damage.
            for end in (0..data.len()).step_by(data.len() / 64 + 1) {
                target(&data[..end]);
            }
            count += 1;
        }
        assert!(count > 0, "no seed corpus for fuzz target {name}");
    }
}

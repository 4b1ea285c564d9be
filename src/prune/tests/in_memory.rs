//! Prune's index is held in memory even when a cache would keep a table.

use super::*;

#[test]
fn prune_holds_its_index_in_memory_even_with_a_cache() {
    let f = fixture();
    let cache = tempfile::tempdir().unwrap();
    let repo = Repository::open(f.storage.clone(), b"pw")
        .unwrap()
        .with_index_cache(cache.path());
    let tables = repo.index_dir().unwrap().to_owned();
    let opts = PruneOptions {
        dry_run: true,
        ..opts()
    };
    let report = crate::prune::safety::prune_repository(repo.clone(), &opts, Duration::ZERO).unwrap();
    assert!(report.dry_run && report.plan.mark_packs > 0);
    assert!(!tables.exists(), "prune read its index through a table");
    // The same repository opened for a backup does write one.
    assert!(repo.load_index().unwrap().index().table_path().is_some());
    assert!(tables.exists());
}

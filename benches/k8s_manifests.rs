//! Manifest backup of a cluster with 10,000 objects: reading them through
//! the API (discovery, paginated lists, normalisation) from the fake API
//! server of the tests, and storing them as one snapshot.

#[path = "../tests/cli_support/mod.rs"]
mod cli_support;
#[path = "../tests/k8s_support/mod.rs"]
mod k8s_support;

use std::sync::Arc;

use cairn::backup::progress::Progress;
use cairn::backup::{backup_files, BackupOptions};
use cairn::k8s::client::{connect, ClusterAccess};
use cairn::k8s::manifests::backup::collect_files;
use cairn::k8s::manifests::filter::Filters;
use cairn::repo::Repository;
use cairn::storage::memory::MemoryStorage;
use cairn::storage::DynStorage;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::json;

const OBJECTS: usize = 10_000;

fn cluster() -> k8s_support::FakeCluster {
    let cluster = k8s_support::FakeCluster::empty();
    {
        let mut state = cluster.state();
        for ns in 0..10 {
            state.seed("", "namespaces", json!({"metadata": {"name": format!("ns-{ns}")}}));
        }
        for i in 0..OBJECTS - 10 {
            state.seed(
                "",
                "configmaps",
                json!({"metadata": {"name": format!("cm-{i:05}"), "namespace": format!("ns-{}", i % 10),
                                    "labels": {"app": "bench"}},
                       "data": {"index": i.to_string(), "config": "x".repeat(200)}}),
            );
        }
    }
    cluster
}

fn manifests(c: &mut Criterion) {
    let cluster = cluster();
    let access = ClusterAccess {
        kubeconfig: Some(cluster.kubeconfig()),
        context: None,
    };
    let rt = cairn::k8s::runtime().unwrap();
    let filters = Filters::default();
    let mut group = c.benchmark_group("k8s_manifests");
    group.sample_size(10);
    group.throughput(Throughput::Elements(OBJECTS as u64));
    group.bench_function("collect_10k_objects", |b| {
        b.iter(|| {
            rt.block_on(async {
                let cluster = connect(&access).await.unwrap();
                let (_, files) = collect_files(&cluster, &filters).await.unwrap();
                assert_eq!(files.len(), OBJECTS);
            })
        })
    });
    let files = rt.block_on(async {
        let cluster = connect(&access).await.unwrap();
        collect_files(&cluster, &filters).await.unwrap().1
    });
    group.bench_function("store_10k_objects_as_a_snapshot", |b| {
        b.iter(|| {
            let storage: DynStorage = Arc::new(MemoryStorage::new());
            let repo = Repository::init(storage, b"pw", cli_support::small_repo_options())
                .unwrap()
                .load_index()
                .unwrap();
            let out = backup_files(
                &repo,
                &files,
                vec!["/resources".into()],
                0,
                &BackupOptions::default(),
                &Progress::default(),
            )
            .unwrap();
            assert_eq!(out.snapshot.summary.files_new, OBJECTS as u64);
        })
    });
    group.finish();
}

criterion_group!(benches, manifests);
criterion_main!(benches);

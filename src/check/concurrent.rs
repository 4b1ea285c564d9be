//! Bounded concurrent reads on the I/O runtime, consumed on the calling
//! thread.

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::CheckError;

/// Runs `work` for every item on the I/O runtime with at most `limit` items
/// in flight, and hands each result to `consume` on the calling thread in the
/// order they complete. A result waits in a channel of one slot, so at most
/// `limit + 2` results exist at any time: memory stays bounded whatever the
/// number of items. Must not be called from inside the runtime.
pub(super) fn for_each_bounded<I, T, F, Fut>(
    rt: &Handle,
    items: Vec<I>,
    limit: usize,
    work: F,
    mut consume: impl FnMut(T),
) -> Result<(), CheckError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let limit = limit.max(1);
    let (tx, mut rx) = mpsc::channel::<Result<T, String>>(1);
    let work = Arc::new(work);
    rt.spawn(async move {
        let mut items = items.into_iter();
        let mut running = JoinSet::new();
        loop {
            while running.len() < limit {
                let Some(item) = items.next() else { break };
                let work = work.clone();
                running.spawn(async move { work(item).await });
            }
            let Some(joined) = running.join_next().await else { break };
            // A closed channel means the consumer stopped: drop the rest.
            if tx.send(joined.map_err(|e| e.to_string())).await.is_err() {
                break;
            }
        }
    });
    while let Some(result) = rx.blocking_recv() {
        consume(result.map_err(CheckError::Task)?);
    }
    Ok(())
}

/// Like [`for_each_bounded`], but each result is handed to `consume` in the
/// order of `items`: a result that completes early waits for those before
/// it, so at most `limit` results are in flight or waiting, one in the
/// channel and one being consumed.
pub(super) fn for_each_in_order<I, T, F, Fut>(
    rt: &Handle,
    items: impl Iterator<Item = I> + Send + 'static,
    limit: usize,
    work: F,
    mut consume: impl FnMut(T),
) -> Result<(), CheckError>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let limit = limit.max(1);
    let (tx, mut rx) = mpsc::channel::<T>(1);
    let handle = rt.spawn(async move {
        let mut results = futures::stream::iter(items).map(work).buffered(limit);
        while let Some(result) = results.next().await {
            // A closed channel means the consumer stopped: drop the rest.
            if tx.send(result).await.is_err() {
                break;
            }
        }
    });
    while let Some(result) = rx.blocking_recv() {
        consume(result);
    }
    // The sender is gone: the task ended, normally or by a panic.
    match rt.block_on(handle) {
        Ok(()) => Ok(()),
        Err(e) => Err(CheckError::Task(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn runs_every_item_with_bounded_concurrency() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (a, p) = (active.clone(), peak.clone());
        let mut got = Vec::new();
        for_each_bounded(
            rt.handle(),
            (0..50u32).collect(),
            3,
            move |i| {
                let (a, p) = (a.clone(), p.clone());
                async move {
                    let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    a.fetch_sub(1, Ordering::SeqCst);
                    i * 2
                }
            },
            |v| got.push(v),
        )
        .unwrap();
        got.sort_unstable();
        assert_eq!(got, (0..50u32).map(|i| i * 2).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(peak.load(Ordering::SeqCst) >= 2);
    }

    #[test]
    fn in_order_keeps_the_order_and_the_bound() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let active = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let (a, p) = (active.clone(), peak.clone());
        let mut got = Vec::new();
        for_each_in_order(
            rt.handle(),
            0..40u64,
            3,
            move |i| {
                let (a, p) = (a.clone(), p.clone());
                async move {
                    let now = a.fetch_add(1, Ordering::SeqCst) + 1;
                    p.fetch_max(now, Ordering::SeqCst);
                    // Later items finish first.
                    tokio::time::sleep(std::time::Duration::from_millis(1 + (40 - i) % 4)).await;
                    a.fetch_sub(1, Ordering::SeqCst);
                    i
                }
            },
            |v| got.push(v),
        )
        .unwrap();
        assert_eq!(got, (0..40u64).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }
}

//! A read-rate limit: a token bucket shared by every thread that reads
//! file contents, so a backup reads at most `rate` bytes a second on
//! average, however many files it reads at once.
//!
//! Reads are charged after they happen: a read takes its bytes from the
//! bucket, possibly leaving it in debt, and the reader then sleeps until
//! the debt is paid back. The bucket holds at most one second of reading,
//! so an idle moment lets at most that much through at full speed.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Time for the limiter: the real clock, or a fake one in tests.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep(&self, d: Duration);
}

/// The system's monotonic clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

#[derive(Debug)]
struct Bucket {
    /// Bytes that may be read now; negative while in debt.
    tokens: f64,
    last: Instant,
}

/// A shared read-rate limit (see the module's documentation).
pub struct ReadLimit {
    /// Bytes per second.
    rate: f64,
    /// Most tokens the bucket holds.
    burst: f64,
    bucket: Mutex<Bucket>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ReadLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadLimit")
            .field("rate", &self.rate)
            .finish_non_exhaustive()
    }
}

impl ReadLimit {
    /// At most `bytes_per_second` (at least 1) on the system clock.
    pub fn new(bytes_per_second: u64) -> Self {
        Self::with_clock(bytes_per_second, Arc::new(SystemClock))
    }

    pub fn with_clock(bytes_per_second: u64, clock: Arc<dyn Clock>) -> Self {
        #[allow(clippy::cast_precision_loss)] // rates far below 2^52
        let rate = bytes_per_second.max(1) as f64;
        let now = clock.now();
        Self {
            rate,
            burst: rate,
            bucket: Mutex::new(Bucket {
                tokens: rate,
                last: now,
            }),
            clock,
        }
    }

    /// Bytes per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Charges `bytes` just read and sleeps as long as the bucket is in
    /// debt. The sleep happens outside the lock: other readers charge their
    /// reads meanwhile and wait for their own (later) turn.
    pub fn charge(&self, bytes: usize) {
        if bytes == 0 {
            return;
        }
        let wait = {
            let mut b = self.bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let now = self.clock.now();
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.last = now;
            #[allow(clippy::cast_precision_loss)]
            let spent = bytes as f64;
            b.tokens = (b.tokens + elapsed * self.rate).min(self.burst) - spent;
            if b.tokens >= 0.0 {
                return;
            }
            Duration::from_secs_f64(-b.tokens / self.rate)
        };
        self.clock.sleep(wait);
    }
}

/// A reader whose reads are charged to a [`ReadLimit`] (none: unlimited).
pub struct Throttled<'a, R> {
    inner: R,
    limit: Option<&'a ReadLimit>,
}

impl<'a, R> Throttled<'a, R> {
    pub fn new(inner: R, limit: Option<&'a ReadLimit>) -> Self {
        Self { inner, limit }
    }
}

impl<R: Read> Read for Throttled<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(limit) = self.limit {
            limit.charge(n);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A clock that only moves when the limiter sleeps (or the test says).
    struct FakeClock {
        start: Instant,
        elapsed: Mutex<Duration>,
        slept: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                start: Instant::now(),
                elapsed: Mutex::new(Duration::ZERO),
                slept: Mutex::new(Vec::new()),
            })
        }
        fn advance(&self, d: Duration) {
            *self.elapsed.lock().unwrap() += d;
        }
        fn total(&self) -> Duration {
            *self.elapsed.lock().unwrap()
        }
        fn sleeps(&self) -> Vec<Duration> {
            self.slept.lock().unwrap().clone()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            self.start + *self.elapsed.lock().unwrap()
        }
        fn sleep(&self, d: Duration) {
            self.slept.lock().unwrap().push(d);
            self.advance(d);
        }
    }

    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(10)
    }

    #[test]
    fn a_full_bucket_lets_one_second_through_then_paces_reads() {
        let clock = FakeClock::new();
        let limit = ReadLimit::with_clock(1000, clock.clone());
        limit.charge(1000);
        assert!(clock.sleeps().is_empty(), "the first second is in the bucket");
        limit.charge(500);
        assert_eq!(clock.sleeps().len(), 1);
        assert!(
            close(clock.sleeps()[0], Duration::from_millis(500)),
            "{:?}",
            clock.sleeps()
        );
        // 10 000 more bytes take 10 more seconds, however they are cut.
        for _ in 0..100 {
            limit.charge(100);
        }
        assert!(
            close(clock.total(), Duration::from_millis(10_500)),
            "{:?}",
            clock.total()
        );
    }

    #[test]
    fn idle_time_refills_the_bucket_only_up_to_one_second() {
        let clock = FakeClock::new();
        let limit = ReadLimit::with_clock(1000, clock.clone());
        limit.charge(1000);
        clock.advance(Duration::from_secs(60));
        limit.charge(1000);
        assert!(clock.sleeps().is_empty(), "a minute idle refills one second");
        limit.charge(2000);
        assert!(close(clock.sleeps()[0], Duration::from_secs(2)), "{:?}", clock.sleeps());
    }

    #[test]
    fn a_throttled_reader_charges_what_it_reads() {
        let clock = FakeClock::new();
        let limit = ReadLimit::with_clock(4096, clock.clone());
        let data = vec![7u8; 3 * 4096];
        let mut out = Vec::new();
        Throttled::new(&data[..], Some(&limit)).read_to_end(&mut out).unwrap();
        assert_eq!(out, data);
        // One second was in the bucket; the other two were waited for.
        assert!(close(clock.total(), Duration::from_secs(2)), "{:?}", clock.total());
        let mut out = Vec::new();
        Throttled::new(&data[..], None).read_to_end(&mut out).unwrap();
        assert!(close(clock.total(), Duration::from_secs(2)), "no limit, no wait");
    }
}

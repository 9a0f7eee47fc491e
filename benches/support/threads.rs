//! Timing loops for the cached paths: one thread, or two threads at once.
//! Each returns the wall time; two threads' is divided by 2, the time per
//! call at the pair's throughput, so perfect scaling halves the 1-thread
//! figure.

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// Wall time of `calls` calls of `op` on this thread.
pub fn one_thread<T>(calls: u64, op: impl Fn() -> T) -> Duration {
    let started = Instant::now();
    for _ in 0..calls {
        black_box(op());
    }
    started.elapsed()
}

/// Wall time of `calls` calls on this thread, cycling through `keys`.
pub fn one_thread_keys<K, T>(calls: u64, keys: &[K], op: impl Fn(&K) -> T) -> Duration {
    let started = Instant::now();
    let mut i = 0;
    for _ in 0..calls {
        black_box(op(&keys[i]));
        i += 1;
        if i == keys.len() {
            i = 0;
        }
    }
    started.elapsed()
}

/// Two threads run `work` at once, starting together; the wall time from
/// the first thread's start to the last one's end, divided by 2.
fn two_threads_running(work: impl Fn(usize) + Sync) -> Duration {
    let start = Barrier::new(2);
    let spans: Vec<(Instant, Instant)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let (start, work) = (&start, &work);
                s.spawn(move || {
                    start.wait();
                    let started = Instant::now();
                    work(t);
                    (started, Instant::now())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a benchmark thread"))
            .collect()
    });
    let first = spans.iter().map(|s| s.0).min().expect("two spans");
    let last = spans.iter().map(|s| s.1).max().expect("two spans");
    (last - first) / 2
}

/// Two threads make `calls` calls of `op` each, concurrently.
pub fn two_threads<T>(calls: u64, op: impl Fn() -> T + Sync) -> Duration {
    two_threads_running(|_| {
        one_thread(calls, &op);
    })
}

/// Two threads make `calls` calls each, thread `t` cycling through
/// `halves[t]`, its own keys.
pub fn two_threads_own_keys<K: Sync, T>(
    calls: u64,
    halves: [&[K]; 2],
    op: impl Fn(&K) -> T + Sync,
) -> Duration {
    two_threads_running(|t| {
        one_thread_keys(calls, halves[t], &op);
    })
}

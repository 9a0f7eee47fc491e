//! Shared by the benchmarks: the same-run comparison that yields each ratio,
//! and the emulator, providers and raw `oauth2` client the refresh
//! benchmarks measure against.
//!
//! Why our own comparison loop after the criterion groups: criterion runs one
//! function's samples, then the next function's, so a compile starting on
//! the shared machine halfway through a group shifts one side only. The loop
//! here alternates candidate and baseline round by round (and which of them
//! goes first), takes the ratio within each round, and reports the median
//! ratio, which drift and bursts of load barely move.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each benchmark uses its own subset"
)]

pub mod refresh;
pub mod threads;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Candidate and baseline, measured in alternating rounds of one run.
#[derive(Debug, Clone, Copy)]
pub struct Comparison {
    /// The candidate's median time per operation.
    pub candidate: Duration,
    /// The baseline's median time per operation.
    pub baseline: Duration,
    /// The median of the per-round ratios candidate / baseline.
    pub ratio: f64,
    /// The smallest and largest per-round ratio, to show the spread.
    pub spread: (f64, f64),
    /// How many rounds.
    pub rounds: usize,
}

/// Times `rounds` rounds. Each round calls `candidate` and `baseline` once
/// each (alternating which goes first); each call returns its time per
/// operation, measured over whatever batch it chooses, setup excluded.
pub fn compare(
    rounds: usize,
    mut candidate: impl FnMut() -> Duration,
    mut baseline: impl FnMut() -> Duration,
) -> Comparison {
    assert!(rounds > 0, "at least one round");
    let mut c = Vec::with_capacity(rounds);
    let mut b = Vec::with_capacity(rounds);
    let mut ratios = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (tc, tb) = if round % 2 == 0 {
            let tc = candidate();
            (tc, baseline())
        } else {
            let tb = baseline();
            (candidate(), tb)
        };
        ratios.push(tc.as_secs_f64() / tb.as_secs_f64());
        c.push(tc);
        b.push(tb);
    }
    let spread = (
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
    );
    Comparison {
        candidate: median(c),
        baseline: median(b),
        ratio: median_f64(ratios),
        spread,
        rounds,
    }
}

/// The median of some durations.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn median_f64(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Prints one comparison as a line of the summary. `budget` is the largest
/// ratio allowed, if the comparison has one.
#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
pub fn report(name: &str, candidate: &str, baseline: &str, cmp: &Comparison, budget: Option<f64>) {
    let verdict = match budget {
        Some(limit) if cmp.ratio <= limit => format!("budget <= {limit:.2}x: PASS"),
        Some(limit) => format!("budget <= {limit:.2}x: MISS"),
        None => "no budget".to_owned(),
    };
    println!(
        "RATIO {name}: {candidate} {:.3?} / {baseline} {:.3?} = {:.3}x \
         (median of {} alternating rounds, spread {:.3}-{:.3}x; {verdict})",
        cmp.candidate, cmp.baseline, cmp.ratio, cmp.rounds, cmp.spread.0, cmp.spread.1
    );
}

/// Prints a heading before the summary lines.
#[allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]
pub fn heading(text: &str) {
    println!();
    println!("== {text}");
}

/// Whether criterion was asked only to check that the benchmarks run
/// (`cargo bench -- --test`) or to list them; the summary then does one
/// short round instead of a measurement.
pub fn quick_mode() -> bool {
    std::env::args().any(|a| a == "--test" || a == "--list")
}

/// Context switches (voluntary and not) of all threads of this process so
/// far, from `/proc/self/task/*/status`; `None` where that does not exist.
/// Threads that have exited are not counted, so compare two readings taken
/// while the same threads live.
pub fn context_switches() -> Option<u64> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(rest) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += rest.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// `m`'s guard, poisoned or not: a benchmark that panicked has failed
/// already.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

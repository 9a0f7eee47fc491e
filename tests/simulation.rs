//! The seeded fault simulation of the refresh protocol (issue 21).
//!
//! Processes (managers, each with its own clock off by up to two minutes
//! and a Refresher) over one model store whose leases expire and fence
//! like Postgres's, many accounts, random operations, kills and pauses at
//! every await point, against a strict single-use server with and without
//! a replay window that supersedes an older grant on new consent; all on
//! Tokio's paused clock. See `sim/mod.rs`, and `sim/checker.rs` for what
//! is allowed.
//!
//! - `ci_seeds_*`: a fixed set of seeds, at least 10,000 operations.
//! - `replay`: one seed from `SIM_SEED` (and `SIM_OPS`), printing its
//!   figures: `SIM_SEED=7 cargo test -p reliability --test simulation replay -- --nocapture`.
//! - `soak` (ignored): 10,000,000 operations;
//!   `cargo test --release -p reliability --test simulation -- --ignored soak --nocapture`.

mod sim;

use std::collections::BTreeMap;
use std::time::Instant;

/// Operations per seed in CI.
const CI_OPS: usize = 600;

/// Seeds run in CI, split over two tests so that both cores work.
const CI_SEEDS_A: [u64; 9] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
const CI_SEEDS_B: [u64; 9] = [10, 11, 12, 13, 14, 15, 16, 17, 18];

fn run_seeds(seeds: &[u64]) -> usize {
    let mut ops = 0;
    for &seed in seeds {
        let report = sim::world::run(seed, CI_OPS);
        report.assert_ok();
        ops += report.config.ops;
    }
    ops
}

#[test]
fn ci_seeds_first_half() {
    let ops = run_seeds(&CI_SEEDS_A);
    assert!(ops >= 5_000, "{ops} operations");
}

#[test]
fn ci_seeds_second_half() {
    let ops = run_seeds(&CI_SEEDS_B);
    assert!(ops >= 5_000, "{ops} operations");
}

/// Replays `SIM_SEED` (default 1) for `SIM_OPS` operations (default the CI
/// figure), printing its figures.
#[test]
#[allow(clippy::print_stderr)]
fn replay() {
    let number = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
    };
    let seed = number("SIM_SEED", 1);
    let ops = usize::try_from(number("SIM_OPS", CI_OPS as u64)).expect("SIM_OPS fits");
    let report = sim::world::run(seed, ops);
    eprintln!("{}", report.summary());
    report.assert_ok();
}

/// The same seed gives the same run: the same figures and the same trace,
/// line for line, for seeds of both kinds of server. (Once, followers woke
/// in an order of tokio's choosing; the figures of a short run stayed the
/// same, and only a few of the soak's seeds showed it.)
#[test]
fn a_seed_replays_exactly() {
    for seed in CI_SEEDS_A.iter().take(4) {
        let a = sim::world::run(*seed, 600);
        let b = sim::world::run(*seed, 600);
        assert_eq!(a.summary(), b.summary(), "seed {seed}: the figures differ");
        assert_eq!(a.digest, b.digest, "seed {seed}: the traces differ");
    }
}

/// The faults the issue names do happen in the CI seeds: kills at await
/// points and between the server's processing and the answer, pauses,
/// lost answers, superseding logins, both kinds of server. A simulation
/// that stopped injecting them would pass everything.
#[test]
fn ci_seeds_reach_every_fault() {
    let mut kills = 0;
    let mut pauses = 0;
    let mut died_awaiting = 0;
    let mut lost = 0;
    let mut superseded = 0;
    let mut replays = 0;
    let (mut windowed, mut windowless, mut expiring, mut flock) = (0, 0, 0, 0);
    for seed in CI_SEEDS_A.iter().chain(&CI_SEEDS_B).take(6) {
        let r = sim::world::run(*seed, 300);
        kills += r.kills;
        pauses += r.pauses;
        died_awaiting += r.stats.died_awaiting_answer;
        lost += r.stats.lost_answers;
        superseded += r.stats.superseded;
        replays += r.stats.replays;
        match r.config.rules.window {
            Some(_) => windowed += 1,
            None => windowless += 1,
        }
        match r.config.lease_ttl {
            Some(_) => expiring += 1,
            None => flock += 1,
        }
    }
    let figures = format!(
        "kills {kills}, pauses {pauses}, deaths awaiting an answer {died_awaiting}, lost answers {lost}, superseded {superseded}, replays {replays}; servers with a window {windowed}, without {windowless}; expiring leases {expiring}, process-bound {flock}"
    );
    assert!(kills > 0 && pauses > 0 && died_awaiting > 0, "{figures}");
    assert!(lost > 0 && superseded > 0 && replays > 0, "{figures}");
    assert!(windowed > 0 && windowless > 0, "{figures}");
    assert!(expiring > 0 && flock > 0, "{figures}");
}

/// 10,000,000 operations over many seeds, in release:
/// `cargo test --release -p reliability --test simulation -- --ignored soak --nocapture`.
/// `SOAK_FIRST_SEED` (default 1,000,000) and `SOAK_OPS` (default
/// 10,000,000) explore other seeds, or more of them.
#[test]
#[ignore = "a soak of 10,000,000 operations; run it in release"]
#[allow(clippy::print_stderr)]
fn soak() {
    let started = Instant::now();
    let per_seed = 5_000;
    let number = |name: &str, default: u64| {
        std::env::var(name).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number"))
        })
    };
    let first_seed = number("SOAK_FIRST_SEED", 1_000_000);
    let total = usize::try_from(number("SOAK_OPS", 10_000_000)).expect("SOAK_OPS fits");
    let mut ops = 0;
    let mut seed = first_seed;
    let (mut rotations, mut replays, mut burns, mut lost, mut sends, mut kills) =
        (0, 0, 0, 0, 0, 0);
    let mut allowed: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed = Vec::new();
    while ops < total {
        let report = sim::world::run(seed, per_seed);
        if !report.findings.violations.is_empty() {
            eprintln!("{}", report.replay_command());
            for (account, v) in report.findings.violations.iter().take(5) {
                eprintln!("  [{account:?}] {v}");
            }
            failed.push(seed);
        }
        ops += report.config.ops;
        rotations += report.stats.rotations;
        replays += report.stats.replays;
        burns += report.stats.burns;
        lost += report.stats.lost_answers + report.stats.died_awaiting_answer;
        sends += report.sends;
        kills += report.kills;
        for (cause, n) in &report.findings.allowed {
            *allowed.entry(cause.clone()).or_default() += n;
        }
        seed += 1;
    }
    eprintln!(
        "soak: {ops} operations over {} seeds in {:?}: {sends} refresh requests, {rotations} rotations, {replays} replays, {lost} answers lost (in transit or with their process), {kills} processes killed between operations, {burns} grants burned",
        seed - first_seed,
        started.elapsed()
    );
    for (cause, n) in &allowed {
        eprintln!("  allowed: {cause}: {n}");
    }
    assert!(failed.is_empty(), "seeds that broke the rules: {failed:?}");
}

/// The checker itself: a burn after the holder died is blamed when a
/// running process had the time to replay inside the window, and allowed
/// (named) when every other process was paused all along.
#[test]
fn the_checker_blames_a_burn_only_when_someone_could_have_replayed() {
    use std::sync::Arc;
    use std::time::Duration;

    use auth_core::TokenStore;
    use auth_core::secrecy::ExposeSecret;
    use sim::checker::{self, Evidence, Findings};
    use sim::rig::Rig;
    use sim::server::Rules;
    use sim::store::ProcStore;

    fn run(other_paused: bool) -> Findings {
        sim::paused_runtime().block_on(async move {
            let rules = Rules {
                window: Some(Duration::from_secs(60)),
                first_use_ends: false,
            };
            let rig = Rig::with_lease_ttl(
                rules,
                Duration::from_secs(8 * 3600),
                Some(Duration::from_secs(10)),
            );
            let (key, seeded) = rig.seed("u").await;
            let holder = rig.life.add();
            let other = rig.life.add();
            if other_paused {
                rig.life.pause(other, Duration::from_secs(600));
            }
            let view = ProcStore::new(Arc::clone(&rig.store), Arc::clone(&rig.chaos), holder);
            let lease = view
                .lock(&key, Duration::from_secs(1))
                .await
                .expect("the lease");
            let spent = seeded
                .refresh_token()
                .expect("a refresh token")
                .expose_secret()
                .to_owned();
            // The server rotates; the holder dies before it saves.
            rig.server
                .refresh(holder, Some(&spent))
                .await
                .expect("a rotation");
            rig.kill(holder);
            drop(lease);
            // The window passes; then somebody sends the spent token.
            tokio::time::sleep(Duration::from_secs(90)).await;
            rig.life.wake_all();
            let burned = rig.server.refresh(other, Some(&spent)).await;
            assert!(
                burned.is_err(),
                "outside the window the spent token burns the grant"
            );
            let lives = rig.life.snapshot();
            let model = rig.server.model();
            let ev = Evidence {
                model: &model,
                store: &rig.store,
                lives: &lives,
                now: tokio::time::Instant::now(),
            };
            let mut findings = Findings::default();
            checker::check(&ev, &[key], &mut findings);
            findings
        })
    }
    let blamed = run(false);
    assert!(
        blamed
            .violations
            .iter()
            .any(|(_, v)| v.contains("could have replayed")),
        "{blamed:?}"
    );
    let excused = run(true);
    assert!(
        excused
            .allowed
            .keys()
            .any(|k| k.contains("no process could replay inside the window")),
        "{excused:?}"
    );
    assert!(
        !excused.violations.iter().any(|(_, v)| v.contains("burned")),
        "{excused:?}"
    );
}

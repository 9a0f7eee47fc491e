//! The one seeded RNG of a run, and the fault rates it draws against.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Probabilities of each fault, per call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rates {
    /// A refresh request is refused before it leaves (nothing was sent).
    pub(crate) refresh_refused: f64,
    pub(crate) refresh_5xx: f64,
    pub(crate) refresh_429: f64,
    /// The server processed the refresh, and the answer was lost on the way
    /// back (the process lives and sees a broken connection).
    pub(crate) refresh_lost: f64,
    /// The server processed the refresh, and the process died before the
    /// answer reached it.
    pub(crate) refresh_die_held: f64,
    /// The answer comes late (15 to 40 s).
    pub(crate) refresh_slow: f64,
    /// The server answers 200 with a body that cannot be read.
    pub(crate) refresh_garbled: f64,
    pub(crate) exchange_5xx: f64,
    pub(crate) exchange_lost: f64,
    pub(crate) exchange_die_held: f64,
    pub(crate) revoke_5xx: f64,
    pub(crate) revoke_lost: f64,
    /// A store read fails before it runs.
    pub(crate) store_read_fail: f64,
    /// A store write fails before it runs.
    pub(crate) store_write_fail: f64,
    /// A store write committed and its answer was lost.
    pub(crate) store_answer_lost: f64,
    pub(crate) lock_timeout: f64,
    /// The process dies at an await point (before a store or server call,
    /// or after its answer arrived).
    pub(crate) die_at_await: f64,
    /// The process dies after a store statement took effect, before it
    /// hears back.
    pub(crate) die_after_statement: f64,
    /// The process pauses at an await point.
    pub(crate) pause_at_await: f64,
    /// Per batch: the store goes down for a while.
    pub(crate) store_outage: f64,
    /// Per batch: the token endpoint answers 503 for a while.
    pub(crate) outage: f64,
}

impl Rates {
    /// Rates scaled from `level` (0 calm, 1 normal, 2 stormy), each one
    /// jittered by the RNG.
    pub(crate) fn draw(rng: &mut StdRng, level: u32) -> Self {
        let scale = [0.01, 0.05, 0.12][level.min(2) as usize];
        let mut f = |weight: f64| weight * scale * rng.random_range(0.0..2.0);
        Self {
            refresh_refused: f(0.5),
            refresh_5xx: f(1.0),
            refresh_429: f(0.5),
            refresh_lost: f(1.0),
            refresh_die_held: f(0.5),
            refresh_slow: f(0.4),
            refresh_garbled: f(0.2),
            exchange_5xx: f(0.5),
            exchange_lost: f(0.5),
            exchange_die_held: f(0.2),
            revoke_5xx: f(0.5),
            revoke_lost: f(0.5),
            store_read_fail: f(0.3),
            store_write_fail: f(0.6),
            store_answer_lost: f(0.3),
            lock_timeout: f(0.2),
            die_at_await: f(0.02),
            die_after_statement: f(0.02),
            pause_at_await: f(0.03),
            store_outage: f(0.1),
            outage: f(0.2),
        }
    }
}

/// Shared by the server model, the store wrapper and the scenario.
#[derive(Debug)]
pub(crate) struct Chaos {
    rng: Mutex<StdRng>,
    rates: Mutex<Rates>,
    /// Store writes fail with "no space left on device" until then.
    disk_full_until: Mutex<Option<SystemTime>>,
    /// The token endpoint answers 503 until then.
    outage_until: Mutex<Option<SystemTime>>,
    /// Faults a regression test asks for: name → how many more times.
    scripted: Mutex<BTreeMap<&'static str, u32>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Chaos {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            rates: Mutex::new(Rates::default()),
            outage_until: Mutex::new(None),
            disk_full_until: Mutex::new(None),
            scripted: Mutex::new(BTreeMap::new()),
        }
    }

    /// Makes fault `name` happen the next `times` times it is considered
    /// (names as in [`Rates`], and `refresh_slow` waits 5 s).
    pub(crate) fn script(&self, name: &'static str, times: u32) {
        *lock(&self.scripted).entry(name).or_default() += times;
    }

    /// Whether a scripted fault `name` is due now (and uses it up).
    pub(crate) fn scripted(&self, name: &'static str) -> bool {
        let mut scripted = lock(&self.scripted);
        match scripted.get_mut(name) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }

    /// Whether fault `name` happens now: scripted, or drawn with
    /// probability `p`.
    pub(crate) fn fires(&self, name: &'static str, p: f64) -> bool {
        self.scripted(name) || self.chance(p)
    }

    pub(crate) fn rng(&self) -> MutexGuard<'_, StdRng> {
        lock(&self.rng)
    }

    pub(crate) fn rates(&self) -> Rates {
        lock(&self.rates).clone()
    }

    pub(crate) fn set_rates(&self, rates: Rates) {
        *lock(&self.rates) = rates;
    }

    /// True with probability `p`.
    pub(crate) fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.rng().random_bool(p.min(1.0))
    }

    /// A uniform integer in `range`.
    pub(crate) fn below(&self, n: usize) -> usize {
        self.rng().random_range(0..n.max(1))
    }

    /// A uniform integer in `[lo, hi)`.
    pub(crate) fn rng_range_i64(&self, lo: i64, hi: i64) -> i64 {
        self.rng().random_range(lo..hi)
    }

    /// A uniform duration in `[lo, hi)`.
    pub(crate) fn duration(&self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let ms = self
            .rng()
            .random_range(lo.as_millis() as u64..hi.as_millis() as u64);
        Duration::from_millis(ms)
    }

    /// Picks one of `weights`' indices, proportionally.
    pub(crate) fn weighted(&self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut pick = self.rng().random_range(0..total.max(1));
        for (i, w) in weights.iter().enumerate() {
            if pick < *w {
                return i;
            }
            pick -= w;
        }
        weights.len() - 1
    }

    /// How long a pause lasts: mostly short, often longer than a lease,
    /// now and then minutes.
    pub(crate) fn pause_length(&self, ttl: Option<Duration>) -> Duration {
        let ttl = ttl.unwrap_or(Duration::from_secs(10));
        match self.weighted(&[50, 35, 15]) {
            0 => self.duration(Duration::from_millis(10), ttl),
            1 => self.duration(ttl, ttl * 4),
            _ => self.duration(ttl * 4, Duration::from_secs(300)),
        }
    }

    pub(crate) fn fill_disk_until(&self, until: Option<SystemTime>) {
        *lock(&self.disk_full_until) = until;
    }

    pub(crate) fn disk_full(&self, now: SystemTime) -> bool {
        lock(&self.disk_full_until).is_some_and(|until| now < until)
    }

    pub(crate) fn outage_until(&self, until: Option<SystemTime>) {
        *lock(&self.outage_until) = until;
    }

    pub(crate) fn in_outage(&self, now: SystemTime) -> bool {
        lock(&self.outage_until).is_some_and(|until| now < until)
    }
}

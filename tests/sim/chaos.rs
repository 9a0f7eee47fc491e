//! The one seeded RNG of a run, and the fault rates it draws against.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Probabilities of each fault, per call.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rates {
    pub(crate) refresh_5xx: f64,
    pub(crate) refresh_429: f64,
    pub(crate) refresh_panic_before: f64,
    pub(crate) refresh_lost: f64,
    pub(crate) refresh_slow: f64,
    pub(crate) refresh_panic_after: f64,
    pub(crate) exchange_5xx: f64,
    pub(crate) exchange_lost: f64,
    pub(crate) revoke_5xx: f64,
    pub(crate) revoke_lost: f64,
    pub(crate) load_fail: f64,
    pub(crate) save_fail: f64,
    pub(crate) lock_fail: f64,
    pub(crate) lock_timeout: f64,
    pub(crate) delete_fail: f64,
    pub(crate) check_fail: f64,
    /// Per batch: the chance that the disk fills up for a while.
    pub(crate) disk_full: f64,
    /// Per batch: the chance that the token endpoint answers 503 for a
    /// while.
    pub(crate) outage: f64,
}

impl Rates {
    /// Rates scaled from `level` (0 calm, 1 normal, 2 stormy), each one
    /// jittered by the RNG.
    pub(crate) fn draw(rng: &mut StdRng, level: u32) -> Self {
        let scale = [0.01, 0.05, 0.12][level.min(2) as usize];
        let mut f = |weight: f64| weight * scale * rng.random_range(0.0..2.0);
        Self {
            refresh_5xx: f(1.0),
            refresh_429: f(0.5),
            refresh_panic_before: f(0.2),
            refresh_lost: f(1.0),
            refresh_slow: f(0.4),
            refresh_panic_after: f(0.2),
            exchange_5xx: f(0.5),
            exchange_lost: f(0.5),
            revoke_5xx: f(0.5),
            revoke_lost: f(0.5),
            load_fail: f(0.5),
            save_fail: f(1.0),
            lock_fail: f(0.3),
            lock_timeout: f(0.3),
            delete_fail: f(0.5),
            check_fail: f(0.2),
            disk_full: f(0.2),
            outage: f(0.2),
        }
    }
}

/// Shared by the server model, the store wrapper and the scenario.
#[derive(Debug)]
pub(crate) struct Chaos {
    rng: Mutex<StdRng>,
    rates: Mutex<Rates>,
    /// Saves fail with "no space left on device" until then.
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
            disk_full_until: Mutex::new(None),
            outage_until: Mutex::new(None),
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

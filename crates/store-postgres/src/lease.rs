//! Key leases: one row per held key in the leases table, owned by a random
//! id, expiring on the database's clock, extended by the store's heartbeat
//! (the heartbeat module) while held; and every write of the key, each one
//! statement that checks the lease and writes (the fence).
//!
//! This module must never hold a transaction or a connection while a lease
//! is held: each step (take, load, mark, save, release) is one
//! autocommitted statement on a pooled connection. And it must never leave
//! a row behind that nobody will release: a `lock` future dropped
//! mid-statement, and a lease dropped without
//! [`release`](auth_core::Lease::release), hand the release to a task.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use auth_core::{
    Error, Expect, Lease, Record, Result, Sequence, Stored, TokenKey, TokenSet, Version,
};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::conn::on_conn;
use crate::error;
use crate::schema::{ExpectKind, Fence};
use crate::store::{RowCols, Shared};

/// A lease on one key, from [`PostgresTokenStore::lock`]: the key's row in
/// the leases table, with this lease's random owner id, kept alive by the
/// store's heartbeat until it is dropped or released. It is the only way
/// to write the key, and every write through it is fenced.
///
/// Dropping it releases it from a spawned task (drop cannot wait for the
/// database); [`release`](Lease::release) does it now. If neither can run
/// (no runtime, the host died, the network is cut), the row expires
/// [`lease_ttl`](crate::PostgresStoreBuilder::lease_ttl) after its last
/// heartbeat, on the database's clock.
///
/// [`PostgresTokenStore::lock`]: auth_core::TokenStore::lock
pub struct PgLease {
    key: TokenKey,
    owner: i64,
    shared: Arc<Shared>,
    lost: Arc<AtomicBool>,
    released: bool,
    /// When the statement that took the lease was sent.
    taken_at: Instant,
    /// The row the statement that took the lease read, for the first
    /// [`load`](Lease::load) (see there).
    first_read: Mutex<Option<Stored>>,
}

impl std::fmt::Debug for PgLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLease")
            .field("key", &self.key)
            .field("owner", &self.owner)
            .field("endpoint", &self.shared.endpoint)
            .field("lost", &self.lost.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What a fenced write statement answers: whether the lease was held, the
/// new version or sequence (`None`: nothing written), and the row as it was
/// (for the error).
struct Outcome {
    held: bool,
    written: Option<i64>,
    current: Option<i64>,
}

/// A mark's or delete's answer: the outcome, whether the row's data was
/// untouched since a store wrote it, and its data when not.
struct Guarded {
    outcome: Outcome,
    untouched: bool,
    data: Option<String>,
}

/// What a save statement answers besides: the row's grant, whether its
/// data was untouched since a store wrote it, and its data when not.
struct SaveOutcome {
    outcome: Outcome,
    grant: Option<i64>,
    untouched: Option<bool>,
    data: Option<String>,
}

impl PgLease {
    /// This lease's owner id: the fencing token its writes carry.
    pub fn owner(&self) -> i64 {
        self.owner
    }

    fn lost_error(&self, what: &str) -> Error {
        error::lease_lost(&self.shared.endpoint, &self.key, what)
    }

    /// Fails at once if the heartbeat found the lease gone (then no
    /// statement can find it held).
    fn check_known(&self, what: &str) -> Result<()> {
        if self.lost.load(Ordering::Acquire) {
            Err(self.lost_error(what))
        } else {
            Ok(())
        }
    }

    fn fail(&self, what: &'static str) -> impl FnOnce(sqlx::Error) -> Error + '_ {
        move |e| error::from_sqlx(&self.shared.endpoint, Some(&self.key), what, e)
    }

    fn ttl_ms(&self) -> i64 {
        ttl_ms(&self.shared)
    }

    fn stop_heartbeat(&self) {
        self.shared.heartbeats.forget(self.owner);
    }

    /// The row the lock read, if this is the first load and the lease was
    /// taken a moment ago (see [`Lease::load`]).
    fn first_read(&self) -> Option<Stored> {
        let first = self
            .first_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        (self.taken_at.elapsed() < self.shared.lease_ttl / FIRST_READ_FRACTION).then_some(first)
    }

    fn forget_first_read(&self) {
        self.first_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// One save statement. `exact` is the data read, for the second try
    /// over data edited by hand.
    async fn save_statement(
        &self,
        data: &str,
        expect: Expect,
        record: Record,
        fence: Fence,
        exact: Option<&str>,
    ) -> Result<SaveOutcome> {
        let (kind, number) = match expect {
            Expect::Absent => (ExpectKind::Absent, None),
            Expect::Version(v) => (ExpectKind::Version, Some(to_db(v.0))),
            Expect::Login(s) => (ExpectKind::Login, Some(to_db(s.0))),
        };
        let sql = self.shared.sql.save.get(kind, fence, exact.is_some());
        let mut query = sqlx::query_as::<
            _,
            (
                bool,
                Option<i64>,
                Option<i64>,
                Option<i64>,
                Option<bool>,
                Option<String>,
            ),
        >(sql)
        .bind(self.key.provider.as_str())
        .bind(self.key.account.as_str())
        .bind(self.owner)
        .bind(data);
        if let Some(number) = number {
            query = query.bind(matches!(record, Record::Clear)).bind(number);
            if let Some(exact) = exact {
                query = query.bind(exact);
            }
        }
        let (held, written, current, grant, untouched, data) =
            on_conn!(self.shared.conns, c => query.fetch_one(c))
                .await
                .map_err(self.fail("save the token"))?;
        Ok(SaveOutcome {
            outcome: Outcome {
                held,
                written,
                current,
            },
            grant,
            untouched,
            data,
        })
    }

    /// A fenced save: one statement when the row's data is untouched since
    /// a store wrote it (always, but for hand edits). Otherwise the row is
    /// decoded first: data this code cannot decode is never overwritten
    /// (`Corrupt`); data edited by hand that still decodes is replaced by a
    /// second statement that checks it is exactly the data read.
    ///
    /// Also says whether this lease's row was released (by a
    /// [`Fence::Release`] statement that ran).
    async fn save_fenced(
        &self,
        token: &TokenSet,
        expect: Expect,
        record: Record,
        fence: Fence,
    ) -> (Result<Version>, bool) {
        let what = match fence {
            Fence::Share => "the fenced save",
            Fence::Release => "the fenced save and release",
        };
        if let Err(err) = self.check_known(what) {
            return (Err(err), false);
        }
        self.forget_first_read();
        let data = serde_json::to_string(token).expect("a token set always serializes to JSON");
        let first = self
            .save_statement(&data, expect, record, fence, None)
            .await;
        // A release statement that ran deleted this owner's lease row,
        // whatever else it did.
        let released = fence == Fence::Release && first.is_ok();
        let result = async {
            let first = first?;
            let read = match self.judge(expect, &first, what)? {
                Judged::Written(version) => return Ok(version),
                Judged::ReplaceRead(read) => read,
            };
            // Data edited by hand that still decodes: replace it if it is
            // still exactly what was read. A save that also releases has
            // released the lease already, so it takes the key again.
            let second = match fence {
                Fence::Share => {
                    self.save_statement(&data, expect, record, Fence::Share, Some(&read))
                        .await?
                }
                Fence::Release => {
                    let mut again = acquire(&self.shared, &self.key, self.shared.lease_ttl).await?;
                    let second = again
                        .save_statement(&data, expect, record, Fence::Release, Some(&read))
                        .await;
                    if second.is_ok() {
                        again.released = true;
                    }
                    second?
                }
            };
            match self.judge(expect, &second, what)? {
                Judged::Written(version) => Ok(version),
                // Changed again between the two statements.
                Judged::ReplaceRead(_) => {
                    Err(self.conflict(expect, second.outcome.current, second.grant))
                }
            }
        }
        .await;
        (result, released)
    }

    /// What a save statement's answer means.
    fn judge(&self, expect: Expect, answer: &SaveOutcome, what: &str) -> Result<Judged> {
        let outcome = &answer.outcome;
        if let Some(version) = outcome.written {
            return Ok(Judged::Written(Version(version as u64)));
        }
        if !outcome.held {
            return Err(self.lost_error(what));
        }
        // Decoding first means damaged data is reported, whatever the
        // caller expected.
        let touched = answer.untouched == Some(false);
        if touched {
            self.shared.decode(&self.key, answer.data.clone())?;
        }
        let matches = match expect {
            Expect::Absent => false,
            Expect::Version(v) => outcome.current == Some(to_db(v.0)),
            Expect::Login(s) => answer.grant.is_none_or(|g| g < to_db(s.0)),
        };
        match (matches, touched, answer.data.clone()) {
            (true, true, Some(read)) => Ok(Judged::ReplaceRead(read)),
            _ => Err(self.conflict(expect, outcome.current, answer.grant)),
        }
    }

    fn conflict(&self, expect: Expect, current: Option<i64>, grant: Option<i64>) -> Error {
        let found = match current {
            None => "no row".to_owned(),
            Some(v) => match grant {
                Some(g) if matches!(expect, Expect::Login(_)) => {
                    format!(
                        "{} holding the grant of login {}",
                        Version(v as u64),
                        Sequence(g as u64)
                    )
                }
                _ => format!("{}", Version(v as u64)),
            },
        };
        let expected = match expect {
            Expect::Absent => "no row (a create)".to_owned(),
            Expect::Version(v) => format!("{v}"),
            Expect::Login(s) => format!("no row or a grant older than login {s}"),
        };
        error::conflict(&self.shared.endpoint, &self.key, &expected, &found)
    }

    /// A fenced write of the mark, delete or sequence statements: binds the
    /// key and owner, then `extra`, then the data read for an exact guard.
    async fn fenced_write(
        &self,
        sql: &str,
        extra: &[i64],
        exact: Option<&str>,
        what: &'static str,
    ) -> Result<Guarded> {
        let mut query = sqlx::query_as::<
            _,
            (bool, Option<i64>, Option<i64>, Option<bool>, Option<String>),
        >(sql)
        .bind(self.key.provider.as_str())
        .bind(self.key.account.as_str())
        .bind(self.owner);
        for value in extra {
            query = query.bind(*value);
        }
        if let Some(exact) = exact {
            query = query.bind(exact);
        }
        let (held, written, current, untouched, data) =
            on_conn!(self.shared.conns, c => query.fetch_one(c))
                .await
                .map_err(self.fail(what))?;
        Ok(Guarded {
            outcome: Outcome {
                held,
                written,
                current,
            },
            untouched: untouched.unwrap_or(true),
            data,
        })
    }

    /// A mark or a delete at `expected`: the statement with the untouched
    /// guard, and when the row's data was edited by hand, after decoding
    /// it (damaged data fails with `Corrupt`), the one with the exact
    /// guard. `Ok(Err(current))` is a conflict.
    async fn guarded_write(
        &self,
        sql: &[String; 2],
        extra: &[i64],
        expected: Version,
        what: &'static str,
        fenced: &str,
    ) -> Result<std::result::Result<Version, Option<i64>>> {
        let first = self.fenced_write(&sql[0], extra, None, what).await?;
        let answer = if first.untouched || first.outcome.written.is_some() || !first.outcome.held {
            first
        } else {
            // Decoding first means damaged data is reported, whatever the
            // caller expected.
            self.shared.decode(&self.key, first.data.clone())?;
            match first.data {
                Some(read) if first.outcome.current == Some(to_db(expected.0)) => {
                    self.fenced_write(&sql[1], extra, Some(&read), what).await?
                }
                _ => first,
            }
        };
        match answer.outcome {
            Outcome {
                written: Some(v), ..
            } => Ok(Ok(Version(v as u64))),
            Outcome { held: false, .. } => Err(self.lost_error(fenced)),
            Outcome { current, .. } => Ok(Err(current)),
        }
    }
}

enum Judged {
    Written(Version),
    /// Nothing written: the row's data was edited by hand but decodes, and
    /// is this.
    ReplaceRead(String),
}

impl Drop for PgLease {
    fn drop(&mut self) {
        self.stop_heartbeat();
        if !self.released {
            spawn_release(&self.shared, &self.key, self.owner);
        }
    }
}

#[async_trait]
impl Lease for PgLease {
    fn key(&self) -> &TokenKey {
        &self.key
    }

    /// The fenced load, extending the lease, in one statement.
    ///
    /// **The first load after [`lock`](auth_core::TokenStore::lock) sends
    /// nothing**: the statement that took the lease also read the row,
    /// locked `FOR SHARE` so that it is the newest committed version (see
    /// the crate docs, "One refresh, three statements"). It is returned if
    /// it is asked for within a twentieth of the lease TTL of the take (the
    /// manager asks at once): nobody else can have written the row since,
    /// and the lease still has at least 95% of the full TTL the take gave
    /// it, on the database's clock, as if this load had extended it. Later loads, and a first load for a key
    /// that had no row when the lease was taken (a row created meanwhile
    /// would not have been seen), send the statement.
    async fn load(&self) -> Result<Option<Stored>> {
        self.check_known("the fenced load")?;
        if let Some(first) = self.first_read() {
            return Ok(Some(first));
        }
        let row: (
            bool,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i64>,
            i64,
        ) = on_conn!(self.shared.conns, c => {
            sqlx::query_as(&self.shared.sql.lease_load)
                .bind(self.key.provider.as_str())
                .bind(self.key.account.as_str())
                .bind(self.owner)
                .bind(self.ttl_ms())
                .fetch_one(c)
        })
        .await
        .map_err(self.fail("load the token"))?;
        let (held, version, data, grant, since, read_at) = row;
        if !held {
            return Err(self.lost_error("the fenced load"));
        }
        self.shared.stored(
            &self.key,
            RowCols {
                version,
                data,
                grant,
                since,
                read_at,
            },
        )
    }

    async fn mark_in_flight(&self, expected: Version) -> Result<Version> {
        let fenced = "the write-ahead record";
        self.check_known(fenced)?;
        self.forget_first_read();
        let sql = &self.shared.sql.mark;
        let extra = [to_db(expected.0), self.ttl_ms()];
        match self
            .guarded_write(
                sql,
                &extra,
                expected,
                "record the refresh in flight",
                fenced,
            )
            .await?
        {
            Ok(version) => Ok(version),
            Err(current) => Err(error::conflict(
                &self.shared.endpoint,
                &self.key,
                &format!("{expected} holding a token"),
                &current.map_or_else(
                    || "no row".to_owned(),
                    |v| format!("{} (or a tombstone)", Version(v as u64)),
                ),
            )),
        }
    }

    async fn save(&self, token: &TokenSet, expected: Expect, record: Record) -> Result<Version> {
        self.save_fenced(token, expected, record, Fence::Share)
            .await
            .0
    }

    /// One statement: the fence deletes this owner's lease row (which
    /// locks it as firmly as `FOR SHARE`) and the save writes only if that
    /// row was unexpired.
    async fn save_and_release(
        mut self: Box<Self>,
        token: &TokenSet,
        expected: Expect,
        record: Record,
    ) -> Result<Version> {
        let (result, released) = self
            .save_fenced(token, expected, record, Fence::Release)
            .await;
        if released {
            self.released = true;
            self.stop_heartbeat();
        }
        result
    }

    async fn delete(&self, expected: Version) -> Result<Version> {
        let fenced = "the fenced delete";
        self.check_known(fenced)?;
        self.forget_first_read();
        let sql = &self.shared.sql.delete;
        match self
            .guarded_write(
                sql,
                &[to_db(expected.0)],
                expected,
                "delete the token",
                fenced,
            )
            .await?
        {
            Ok(version) => Ok(version),
            Err(current) => Err(error::conflict(
                &self.shared.endpoint,
                &self.key,
                &expected.to_string(),
                &current.map_or_else(|| "no row".to_owned(), |v| Version(v as u64).to_string()),
            )),
        }
    }

    async fn next_sequence(&self) -> Result<Sequence> {
        self.check_known("taking a login sequence number")?;
        self.forget_first_read();
        let Guarded { outcome, .. } = self
            .fenced_write(
                &self.shared.sql.next_sequence,
                &[],
                None,
                "take a login sequence number",
            )
            .await?;
        match outcome.written {
            Some(seq) if outcome.held => Ok(Sequence(seq as u64)),
            _ => Err(self.lost_error("taking a login sequence number")),
        }
    }

    async fn release(mut self: Box<Self>) -> Result<()> {
        self.stop_heartbeat();
        self.released = true;
        release_row(&self.shared, &self.key, self.owner).await
    }
}

/// The first load is served from the lock's read only within this fraction
/// of the lease TTL after the take: the lease then has at least 95% of its
/// TTL left on the database's clock, as if the load had extended it.
const FIRST_READ_FRACTION: u32 = 20;

/// A version or sequence as the database stores it (no stored value is
/// larger than `i64::MAX`; a larger one matches nothing).
fn to_db(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn ttl_ms(shared: &Shared) -> i64 {
    i64::try_from(shared.lease_ttl.as_millis()).unwrap_or(i64::MAX)
}

async fn release_row(shared: &Shared, key: &TokenKey, owner: i64) -> Result<()> {
    on_conn!(shared.conns, c => {
        sqlx::query(&shared.sql.lease_release)
            .bind(key.provider.as_str())
            .bind(key.account.as_str())
            .bind(owner)
            .execute(c)
    })
    .await
    .map_err(|e| error::from_sqlx(&shared.endpoint, Some(key), "release the lease", e))?;
    Ok(())
}

/// Deletes the row of `owner` from a task, if there is a runtime to run it;
/// otherwise the row expires.
fn spawn_release(shared: &Arc<Shared>, key: &TokenKey, owner: i64) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        debug!(%key, "lease dropped outside a runtime; it frees when it expires");
        return;
    };
    let (shared, key) = (Arc::clone(shared), key.clone());
    let pending = RELEASES.started();
    runtime.spawn(async move {
        if let Err(err) = release_row(&shared, &key, owner).await {
            warn!(%key, error = %err, "could not release a lease; it frees when it expires");
        }
        drop(pending);
    });
}

/// Releases a row this process may have taken, if dropped before
/// [`disarm`](Self::disarm): a `lock` cancelled while its statement was in
/// flight cannot know whether it won, so it releases just in case (the
/// owner id is unique to this attempt, so it can only delete its own row).
struct Unclaimed<'a> {
    shared: &'a Arc<Shared>,
    key: &'a TokenKey,
    owner: i64,
    armed: bool,
}

impl Unclaimed<'_> {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Unclaimed<'_> {
    fn drop(&mut self) {
        if self.armed {
            spawn_release(self.shared, self.key, self.owner);
        }
    }
}

/// The lock statement's row: NULL columns when the key had no row in the
/// statement's snapshot.
/// The last column is `synchronous_commit` as the statement set it.
type LockRow = (
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    String,
);

/// Takes the lease on `key` and reads its row in one statement, polling
/// until `wait` runs out.
pub(crate) async fn acquire(
    shared: &Arc<Shared>,
    key: &TokenKey,
    wait: Duration,
) -> Result<PgLease> {
    let owner: i64 = rand::random();
    let deadline = Instant::now() + wait;
    let ttl_ms = ttl_ms(shared);
    let mut pause = Duration::from_millis(5).min(shared.poll_interval);
    loop {
        let attempt = Unclaimed {
            shared,
            key,
            owner,
            armed: true,
        };
        let sent = Instant::now();
        let won: Option<LockRow> = on_conn!(shared.conns, c => {
            sqlx::query_as(&shared.sql.lock)
                .bind(key.provider.as_str())
                .bind(key.account.as_str())
                .bind(owner)
                .bind(ttl_ms)
                .fetch_optional(c)
        })
        .await
        .map_err(|e| error::from_sqlx(&shared.endpoint, Some(key), "take the lease", e))?;
        attempt.disarm();
        if let Some((version, data, grant, since, read_at, _async_commit)) = won {
            let lost = Arc::new(AtomicBool::new(false));
            shared
                .heartbeats
                .hold(shared, key.clone(), owner, Arc::clone(&lost), sent);
            let lease = PgLease {
                key: key.clone(),
                owner,
                shared: Arc::clone(shared),
                lost,
                released: false,
                taken_at: sent,
                first_read: Mutex::new(None),
            };
            // Only a row seen is trusted: "no row" may be a row created
            // after the snapshot, and undecodable data is reported by the
            // load that reads it again.
            if version.is_some()
                && let Ok(Some(stored)) = shared.stored(
                    key,
                    RowCols {
                        version,
                        data,
                        grant,
                        since,
                        read_at,
                    },
                )
            {
                *lease
                    .first_read
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(stored);
            }
            return Ok(lease);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(error::lock_timeout(&shared.endpoint, key, wait));
        }
        // Jitter keeps many waiters from polling in step.
        let jitter = 0.75 + rand::random::<f64>() / 2.0;
        tokio::time::sleep(pause.mul_f64(jitter).min(deadline - now)).await;
        pause = (pause * 2).min(shared.poll_interval);
    }
}

/// The releases of dropped leases still in flight in this process, of
/// every store: [`PostgresTokenStore::close`](crate::PostgresTokenStore::close)
/// waits for them before a short-lived program exits, and `orphaned` before
/// it looks, so that a lease this process dropped before the call counts
/// as free, whichever store (or pool) of the process asks.
pub(crate) static RELEASES: Releases = Releases::new();

/// A release in flight, counted until dropped.
struct Pending(&'static Releases);

impl Drop for Pending {
    fn drop(&mut self) {
        self.0.finished();
    }
}

/// Counts lease releases handed to tasks.
#[derive(Debug)]
pub(crate) struct Releases {
    pending: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

impl Releases {
    const fn new() -> Self {
        Self {
            pending: std::sync::atomic::AtomicUsize::new(0),
            idle: tokio::sync::Notify::const_new(),
        }
    }

    /// Counts a release as in flight until the guard is dropped: when the
    /// task ends, or is dropped unfinished with its runtime.
    fn started(&'static self) -> Pending {
        self.pending.fetch_add(1, Ordering::AcqRel);
        Pending(self)
    }

    fn finished(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_waiters();
        }
    }

    /// Returns when no release is in flight.
    pub(crate) async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

//! The analytics store: the figures of settled calls (those no longer running) kept in memory, sorted
//! by when they were sent, so that a report over a million calls is a scan of a few tens of megabytes instead of
//! sorting the database's rows for every percentile (seconds on either database; see docs/analytics.md).
//!
//! What is in it, and why it stays right:
//! - **Settled calls only.** The store covers the calls sent before its *cut*: at least [`SETTLE_MS`] ago and
//!   before the oldest call still running. Such a record changes again only in the ways counted below, so the
//!   store never has to update a row in place. A report reads the calls after the cut from the database (minutes of
//!   calls), and the store takes in newly settled calls before each report.
//! - **Changes to settled history are counted in the database.** Deleting a conversation or an account, ending
//!   a call sent long ago (its start came late, or the sweep marked it interrupted before its end arrived), and
//!   writing a record long after its call was sent ([`crate::db::analytics::LATE_MS`], half the settling time),
//!   count a change for that person in `call_history_changes`, in the same transaction, with the oldest call it
//!   touched. Before a report the store compares those counts with the ones it loaded and reloads the people
//!   whose history changed — from that oldest call when it missed only the latest change, else all of their
//!   calls — on every instance sharing the database. The bound: instances' clocks must agree within `LATE_MS`
//!   (5 minutes).
//! - **Bounded memory.** `analytics_memory_mb` caps the rows (about 90 bytes each); the newest calls that fit are
//!   kept and a report reaching earlier than the oldest kept call reads the database instead. 0 turns it off.
//!   The first report loads it (about a second per million calls); an idle server holds nothing.

use crate::db::Db;
use crate::db::analytics::{self as queries, Figures, LATE_MS};
use crate::domain::{CallFilter, CallStatus, Source};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// Calls sent at least this long ago (and before the oldest running call) are settled.
pub const SETTLE_MS: i64 = 2 * LATE_MS;

/// "No value" in a float column.
const NONE_F: f64 = f64::NAN;
/// "No value" in a token column.
const NONE_U: u32 = u32::MAX;

/// The statuses, in the order of [`Row::status`].
pub const STATUSES: [CallStatus; 5] = [
    CallStatus::Pending,
    CallStatus::Ok,
    CallStatus::Error,
    CallStatus::Cancelled,
    CallStatus::Interrupted,
];

/// One call's figures. Text columns are ids of [`Names`] ("" for none).
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub sent_ms: i64,
    /// `i64::MIN` when the call has no cost.
    pub cost_micros: i64,
    /// NaN when absent.
    pub latency_ms: f64,
    pub ttft_ms: f64,
    pub tokens_per_sec: f64,
    /// [`u32::MAX`] when absent.
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub cached_tokens: u32,
    pub reasoning_tokens: u32,
    pub user: u32,
    pub model: u32,
    pub provider: u32,
    pub api_key: u32,
    pub finish_reason: u32,
    pub error_class: u32,
    /// An index of [`STATUSES`].
    pub status: u8,
    pub api: bool,
    pub streamed: bool,
    pub priced: bool,
    /// The parameters' ranges ([`super::effects::Param::range_of`]): temperature, top P, max tokens.
    pub ranges: [u8; 3],
}

fn float(v: Option<f64>) -> f64 {
    v.unwrap_or(NONE_F)
}

fn tokens(v: Option<i64>) -> u32 {
    v.map_or(NONE_U, |n| n.clamp(0, i64::from(NONE_U - 1)) as u32)
}

/// A token column's value, if it has one.
pub fn tokens_of(v: u32) -> Option<i64> {
    (v != NONE_U).then_some(i64::from(v))
}

/// A float column's value, if it has one.
pub fn float_of(v: f64) -> Option<f64> {
    (!v.is_nan()).then_some(v)
}

/// The text values of the rows, each stored once.
#[derive(Default)]
pub struct Names {
    ids: HashMap<Arc<str>, u32>,
    names: Vec<Arc<str>>,
}

impl Names {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = Arc::from(s);
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }

    /// The id of `s`, if any row has it.
    pub fn find(&self, s: &str) -> Option<u32> {
        self.ids.get(s).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map_or("", |n| n)
    }

    fn row(&mut self, f: &Figures) -> Row {
        use super::effects::Param;
        let status = STATUSES
            .iter()
            .position(|s| s.as_str() == f.status)
            .unwrap_or(0) as u8;
        Row {
            sent_ms: f.sent_ms,
            cost_micros: f.cost_micros.unwrap_or(i64::MIN),
            latency_ms: float(f.latency_ms),
            ttft_ms: float(f.ttft_ms),
            tokens_per_sec: float(f.tokens_per_sec),
            input_tokens: tokens(f.input_tokens),
            output_tokens: tokens(f.output_tokens),
            cached_tokens: tokens(f.cached_tokens),
            reasoning_tokens: tokens(f.reasoning_tokens),
            user: self.id(&f.user_id),
            model: self.id(&f.model),
            provider: self.id(&f.provider),
            api_key: self.id(f.api_key_id.as_deref().unwrap_or("")),
            finish_reason: self.id(f.finish_reason.as_deref().unwrap_or("")),
            error_class: self.id(f.error_class.as_deref().unwrap_or("")),
            status,
            api: f.source == Source::Api.as_str(),
            streamed: f.streamed != 0,
            priced: f.priced != 0,
            ranges: [
                Param::Temperature.range_of(f.temperature) as u8,
                Param::TopP.range_of(f.top_p) as u8,
                Param::MaxTokens.range_of(f.max_tokens.map(|n| n as f64)) as u8,
            ],
        }
    }
}

/// The settled calls: every call sent in `[floor, cut)`, by time.
pub struct Settled {
    pub rows: Vec<Row>,
    pub floor: i64,
    pub cut: i64,
}

impl Settled {
    /// The rows sent in `[from_ms, to_ms)`.
    pub fn between(&self, from_ms: i64, to_ms: i64) -> &[Row] {
        let a = self.rows.partition_point(|r| r.sent_ms < from_ms);
        let b = self.rows.partition_point(|r| r.sent_ms < to_ms);
        &self.rows[a..b.max(a)]
    }
}

/// What the refresh knows: whether the store is loaded, and the history counts it loaded.
#[derive(Default)]
struct Loaded {
    done: bool,
    generations: HashMap<String, i64>,
}

pub struct CallStore {
    max_rows: usize,
    /// Held while the store takes in calls, so that one refresh runs at a time.
    loaded: tokio::sync::Mutex<Loaded>,
    pub settled: RwLock<Settled>,
    pub names: Mutex<Names>,
}

/// A report's calls: the store's rows of the period and those read after its cut, with the filter in ids.
pub struct Prepared {
    pub recent: Vec<Row>,
    pub want: Want,
}

/// A filter's values as ids; [`u32::MAX`] for a value no call has (nothing matches).
#[derive(Debug, Clone, Copy, Default)]
pub struct Want {
    pub from_ms: i64,
    pub to_ms: i64,
    /// The cut when the recent calls were read: the store's rows from here on are theirs to count.
    pub settled_before: i64,
    pub user: Option<u32>,
    pub model: Option<u32>,
    pub provider: Option<u32>,
    pub api_key: Option<u32>,
    pub status: Option<u8>,
    pub api: Option<bool>,
    pub streamed: Option<bool>,
}

impl Want {
    pub fn matches(&self, r: &Row) -> bool {
        fn is<T: PartialEq>(want: Option<T>, v: T) -> bool {
            want.is_none_or(|w| w == v)
        }
        is(self.user, r.user)
            && is(self.model, r.model)
            && is(self.provider, r.provider)
            && is(self.api_key, r.api_key)
            && is(self.status, r.status)
            && is(self.api, r.api)
            && is(self.streamed, r.streamed)
    }
}

impl CallStore {
    /// A store holding at most `memory_mb` MiB of rows (0: none).
    pub fn new(memory_mb: u64) -> CallStore {
        let bytes = usize::try_from(memory_mb.saturating_mul(1 << 20)).unwrap_or(usize::MAX);
        CallStore::with_max_rows(bytes / std::mem::size_of::<Row>())
    }

    /// A store holding at most `max_rows` calls.
    pub fn with_max_rows(max_rows: usize) -> CallStore {
        CallStore {
            max_rows,
            loaded: tokio::sync::Mutex::new(Loaded::default()),
            settled: RwLock::new(Settled {
                rows: Vec::new(),
                floor: i64::MAX,
                cut: i64::MIN,
            }),
            names: Mutex::new(Names::default()),
        }
    }

    /// The rows held now and the most it may hold.
    pub fn size(&self) -> (usize, usize) {
        (self.read().rows.len(), self.max_rows)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Settled> {
        self.settled.read().unwrap_or_else(|e| e.into_inner())
    }

    fn try_write(&self) -> Option<std::sync::RwLockWriteGuard<'_, Settled>> {
        match self.settled.try_write() {
            Ok(g) => Some(g),
            Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// The write lock, waited for without blocking an async thread: a report holds the read lock for its
    /// whole scan (about a tenth of a second over a million calls), and the server's other requests run on
    /// those threads.
    async fn write(&self) -> std::sync::RwLockWriteGuard<'_, Settled> {
        loop {
            if let Some(g) = self.try_write() {
                return g;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }

    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Brings the store up to date for a report of `filter` over `[from_ms, to_ms)` and reads the calls after
    /// its cut. `None` when the store cannot answer: it is off, the period reaches before its oldest call, or
    /// the filter narrows by something it does not keep.
    pub async fn prepare(
        &self,
        db: &Db,
        filter: &CallFilter,
        from_ms: i64,
        to_ms: i64,
    ) -> sqlx::Result<Option<Prepared>> {
        let narrows_by_more = filter.role.is_some()
            || filter.text.is_some()
            || filter.min_latency_ms.is_some()
            || filter.min_tokens.is_some()
            || filter.min_cost_micros.is_some();
        if self.max_rows == 0 || narrows_by_more {
            return Ok(None);
        }
        let user_id = match &filter.user {
            Some(u) => match queries::user_id_of(db, u).await? {
                Some(id) => Some(id),
                // No such person: nothing to show, and nothing to load for it.
                None => {
                    return Ok(Some(Prepared {
                        recent: Vec::new(),
                        want: Want {
                            from_ms,
                            to_ms,
                            settled_before: from_ms,
                            user: Some(u32::MAX),
                            ..Want::default()
                        },
                    }));
                }
            },
            None => None,
        };
        self.refresh(db, user_id.as_deref()).await?;
        let (floor, cut) = {
            let s = self.read();
            (s.floor, s.cut)
        };
        if from_ms < floor {
            return Ok(None);
        }
        let mut recent_filter = filter.clone();
        recent_filter.sent_from_ms = Some(from_ms.max(cut));
        recent_filter.sent_before_ms = Some(to_ms);
        let mut figures = Vec::new();
        if to_ms > cut {
            const MOST_RECENT: i64 = 1_000_000;
            let n = queries::each_figures(db, &recent_filter, false, Some(MOST_RECENT), |f| {
                figures.push(f)
            })
            .await?;
            if n as i64 >= MOST_RECENT {
                // More than a report should hold in memory (a call running for long holds the cut back).
                return Ok(None);
            }
        }
        let mut names = self.names();
        let recent = figures.iter().map(|f| names.row(f)).collect();
        let id = |v: &Option<String>| v.as_deref().map(|s| names.find(s).unwrap_or(u32::MAX));
        let want = Want {
            from_ms,
            to_ms,
            settled_before: cut,
            user: id(&user_id),
            model: id(&filter.model),
            provider: id(&filter.provider),
            api_key: id(&filter.api_key),
            status: filter
                .status
                .map(|s| STATUSES.iter().position(|x| *x == s).unwrap_or(0) as u8),
            api: filter.source.map(|s| s == Source::Api),
            streamed: filter.streamed,
        };
        Ok(Some(Prepared { recent, want }))
    }

    /// Loads the store on first use; then reloads the people whose settled history changed (`user_id`'s, or
    /// everyone's when `None`) and takes in the calls that settled since.
    async fn refresh(&self, db: &Db, user_id: Option<&str>) -> sqlx::Result<()> {
        let mut loaded = self.loaded.lock().await;
        // The counts first: a change made while loading is seen by the next refresh.
        let generations =
            queries::history_generations(db, if loaded.done { user_id } else { None }).await?;
        let now = crate::util::now_ms();
        let pending = queries::oldest_pending(db).await?;
        let cut = (now - SETTLE_MS).min(pending.unwrap_or(i64::MAX));
        if !loaded.done {
            self.load_all(db, cut).await?;
            loaded.generations = generations
                .into_iter()
                .map(|c| (c.user_id, c.generation))
                .collect();
            loaded.done = true;
            return Ok(());
        }
        let old_cut = self.read().cut;
        for change in generations {
            // Absent from what was loaded: no change then.
            let known = loaded
                .generations
                .get(&change.user_id)
                .copied()
                .unwrap_or(0);
            if known == change.generation {
                continue;
            }
            // Only the latest change missed: its calls from `since_ms` on; more than one: all of them.
            let since = (change.generation == known + 1).then_some(change.since_ms);
            self.reload_user(db, &change.user_id, since, old_cut)
                .await?;
            loaded.generations.insert(change.user_id, change.generation);
        }
        if cut > old_cut {
            self.take_in(db, old_cut, cut).await?;
        }
        Ok(())
    }

    /// Reads the rows of `filter` into a vector, oldest first.
    async fn rows(
        &self,
        db: &Db,
        filter: &CallFilter,
        newest_first: bool,
        limit: Option<i64>,
    ) -> sqlx::Result<Vec<Row>> {
        let mut rows = Vec::new();
        let mut batch = Vec::with_capacity(1024);
        let names = &self.names;
        let flush = |batch: &mut Vec<Figures>, rows: &mut Vec<Row>| {
            let mut names = names.lock().unwrap_or_else(|e| e.into_inner());
            rows.extend(batch.drain(..).map(|f| names.row(&f)));
        };
        queries::each_figures(db, filter, newest_first, limit, |f| {
            batch.push(f);
            if batch.len() == batch.capacity() {
                flush(&mut batch, &mut rows);
            }
        })
        .await?;
        flush(&mut batch, &mut rows);
        if newest_first {
            rows.reverse();
        }
        rows.shrink_to_fit();
        Ok(rows)
    }

    /// Loads the newest settled calls that fit.
    async fn load_all(&self, db: &Db, cut: i64) -> sqlx::Result<()> {
        let filter = CallFilter {
            sent_before_ms: Some(cut),
            ..CallFilter::default()
        };
        let limit = i64::try_from(self.max_rows)
            .unwrap_or(i64::MAX)
            .saturating_add(1);
        let mut rows = self.rows(db, &filter, true, Some(limit)).await?;
        let mut floor = i64::MIN;
        if rows.len() > self.max_rows {
            // Full: keep only whole milliseconds, so that the floor is exact.
            floor = rows[0].sent_ms + 1;
            let keep = rows.partition_point(|r| r.sent_ms < floor);
            rows.drain(..keep);
        }
        *self.write().await = Settled { rows, floor, cut };
        Ok(())
    }

    /// Replaces `user_id`'s rows sent from `since` on (all of them with `None`) by what the database holds now.
    async fn reload_user(
        &self,
        db: &Db,
        user_id: &str,
        since: Option<i64>,
        cut: i64,
    ) -> sqlx::Result<()> {
        // Only this refresh changes the floor (it holds `loaded`), but an earlier reload may have raised it.
        let floor = self.read().floor;
        let from = since.unwrap_or(i64::MIN).max(floor);
        let filter = CallFilter {
            user: Some(user_id.to_string()),
            sent_from_ms: (from > i64::MIN).then_some(from),
            sent_before_ms: Some(cut),
            ..CallFilter::default()
        };
        let theirs = self.rows(db, &filter, false, None).await?;
        // After the read, which names them: a person with no calls held before has no rows to drop.
        let id = self.names().find(user_id);
        let merged = {
            let s = self.read();
            merge_sorted(
                s.rows
                    .iter()
                    .filter(|r| !(Some(r.user) == id && r.sent_ms >= from))
                    .copied(),
                theirs,
            )
        };
        self.write().await.rows = merged;
        self.trim().await;
        Ok(())
    }

    /// Takes in the calls sent in `[from, to)`.
    async fn take_in(&self, db: &Db, from: i64, to: i64) -> sqlx::Result<()> {
        let filter = CallFilter {
            sent_from_ms: Some(from),
            sent_before_ms: Some(to),
            ..CallFilter::default()
        };
        let rows = self.rows(db, &filter, false, None).await?;
        {
            let mut s = self.write().await;
            s.rows.extend(rows);
            s.cut = to;
        }
        self.trim().await;
        Ok(())
    }

    /// Drops the oldest rows beyond the cap (a tenth more, so that this is rare), raising the floor.
    async fn trim(&self) {
        let mut s = self.write().await;
        if s.rows.len() <= self.max_rows {
            return;
        }
        let excess = s.rows.len() - self.max_rows + self.max_rows / 10;
        let floor = s.rows[excess.min(s.rows.len() - 1)].sent_ms + 1;
        let keep_from = s.rows.partition_point(|r| r.sent_ms < floor);
        s.rows.drain(..keep_from);
        s.rows.shrink_to_fit();
        s.floor = s.floor.max(floor);
    }
}

/// The rows of two time-sorted sequences, by time.
fn merge_sorted(a: impl Iterator<Item = Row>, b: Vec<Row>) -> Vec<Row> {
    let mut out = Vec::with_capacity(a.size_hint().0 + b.len());
    let mut b = b.into_iter().peekable();
    for r in a {
        while let Some(x) = b.next_if(|x| x.sent_ms < r.sent_ms) {
            out.push(x);
        }
        out.push(r);
    }
    out.extend(b);
    out
}

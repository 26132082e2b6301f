//! Budgets: money or tokens per day or month for a person or an API key, checked before a call with the
//! call's worst case (its prompt's estimate, and its max tokens at the output price).
//!
//! The worst case is *reserved* as the call starts and settled to what the call cost as it ends, so the calls
//! in flight count at their worst, and a period never goes over its budget by more than the difference between
//! the estimate of a prompt and what the provider counted. With one instance (SQLite) a period's use is kept in
//! this process under a lock (no write per call; it starts from the period's call records the first time the
//! period is met). With several instances (PostgreSQL) the period's use is kept in `budget_usage`, and each
//! instance *leases* a share of what is left (one conditional update, which no two instances can both pass
//! beyond the budget): its calls reserve from the share in memory, with no write per call, and the share it does
//! not use goes back every second ([`run_returns`]). A share is the larger of what the call needs and a twentieth
//! of the budget, or just what the call needs when less is left. So the budget holds exactly across instances;
//! the cost is that a call may be refused for up to a second while another instance holds share it has not
//! used (what it leased less what its calls have settled to). A process that ends without giving back (a crash) leaves its share, and its
//! calls' worst cases, counted in `budget_usage` until the period ends: budgets err on the side of stopping.
//!
//! The budgets themselves are read once every few seconds, not per call: a call of someone without a budget
//! costs nothing here.

use crate::db::Db;
use crate::db::budgets::{self as store, BudgetRow};
use crate::llm::registry::Prices;
use jiff::tz::TimeZone;
use std::sync::{Arc, Mutex, RwLock};

/// How long the budgets read are used before they are read again (changes made here apply at once).
const FRESH_MS: i64 = 5_000;

/// Money or tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Usd,
    Tokens,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "usd" => Some(Kind::Usd),
            "tokens" => Some(Kind::Tokens),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Usd => "usd",
            Kind::Tokens => "tokens",
        }
    }
}

/// A day or a month, in the budget time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "month" => Some(Period::Month),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// When the period holding `now_ms` starts and ends, in `tz`.
    pub fn bounds(self, tz: &TimeZone, now_ms: i64) -> (i64, i64) {
        use crate::analytics::filter::{local_day, local_midnight};
        const DAY_MS: i64 = 86_400_000;
        let today = local_day(tz, now_ms);
        match self {
            Period::Day => (local_midnight(tz, today), local_midnight(tz, today + 1)),
            Period::Month => {
                let (y, m, _) = crate::util::civil_from_days(today);
                let day_of = |y: i64, m: u32| {
                    crate::util::parse_date_ms(&format!("{y:04}-{m:02}-01"))
                        .map_or(today, |ms| ms / DAY_MS)
                };
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                (
                    local_midnight(tz, day_of(y, m)),
                    local_midnight(tz, day_of(ny, nm)),
                )
            }
        }
    }
}

/// A call's claim on a budget, settled when it ends.
#[derive(Debug, Clone)]
pub struct Hold {
    budget_id: String,
    kind: Kind,
    period_start_ms: i64,
    reserved: i64,
}

/// Why a call is refused, in a sentence, and when the period turns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverBudget {
    pub message: String,
    pub retry_after_secs: u64,
}

/// What a call may cost at most.
pub struct WorstCase<'a> {
    pub user_id: &'a str,
    pub api_key_id: Option<&'a str>,
    pub prices: Prices,
    pub input_tokens: i64,
    /// The answer's room: its max tokens.
    pub output_tokens: i64,
}

pub struct Budgets {
    tz: TimeZone,
    read: RwLock<(i64, Arc<Vec<BudgetRow>>)>,
    /// With one instance (SQLite) each period's use is kept here, exactly, with no write per call: it starts
    /// from the period's call records the first time the period is met (after a restart too, when no call of
    /// the process is running). With several instances (PostgreSQL) it is kept in `budget_usage`.
    local: Option<Mutex<std::collections::HashMap<(String, i64), i64>>>,
    /// With several instances: this instance's shares of each budget's period.
    leases: Arc<Mutex<std::collections::HashMap<(String, i64), Lease>>>,
    /// Holds of running calls, by call id.
    holds: Mutex<std::collections::HashMap<String, Vec<Hold>>>,
}

/// An instance's share of a budget's period: `granted` counted in `budget_usage`, `used` of it by its calls.
#[derive(Debug, Default, Clone, Copy)]
struct Lease {
    granted: i64,
    used: i64,
}

impl Lease {
    fn spare(&self) -> i64 {
        (self.granted - self.used).max(0)
    }
}

/// An instant as people read it, in `tz`: `2026-12-09 00:00 (Europe/Paris)`.
pub fn local_time_text(tz: &TimeZone, ms: i64) -> String {
    let dt = tz
        .to_datetime(jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH));
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} ({})",
        dt.year(),
        dt.month(),
        dt.day(),
        dt.hour(),
        dt.minute(),
        tz.iana_name().unwrap_or("UTC")
    )
}

/// A budget's amount or use in its unit.
pub fn amount_text(kind: Kind, v: i64) -> String {
    match kind {
        Kind::Usd => crate::money::amount(v),
        Kind::Tokens => format!("{} tokens", crate::web::charts::number(v as f64)),
    }
}

impl Budgets {
    /// `one_instance`: no other process runs calls on this database (SQLite).
    pub fn new(tz: TimeZone, one_instance: bool) -> Budgets {
        Budgets {
            tz,
            local: one_instance.then(Default::default),
            leases: Default::default(),
            read: RwLock::new((i64::MIN, Arc::new(Vec::new()))),
            holds: Default::default(),
        }
    }

    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The budgets, read again when they are older than a few seconds.
    pub async fn current(&self, db: &Db) -> sqlx::Result<Arc<Vec<BudgetRow>>> {
        let now = crate::util::now_ms();
        {
            let r = self.read.read().unwrap_or_else(|e| e.into_inner());
            if now.saturating_sub(r.0) < FRESH_MS {
                return Ok(r.1.clone());
            }
        }
        self.reload(db).await
    }

    /// Reads the budgets now (after a change made here).
    pub async fn reload(&self, db: &Db) -> sqlx::Result<Arc<Vec<BudgetRow>>> {
        let rows = Arc::new(store::all(db).await?);
        *self.read.write().unwrap_or_else(|e| e.into_inner()) =
            (crate::util::now_ms(), rows.clone());
        Ok(rows)
    }

    /// Reserves the call's worst case on each budget that applies to it, or refuses it (reserving nothing).
    pub async fn reserve(
        &self,
        db: &Db,
        w: &WorstCase<'_>,
    ) -> anyhow::Result<Result<Vec<Hold>, OverBudget>> {
        let all = self.current(db).await?;
        let applies: Vec<&BudgetRow> = all
            .iter()
            .filter(|b| {
                b.user_id.as_deref() == Some(w.user_id)
                    || (w.api_key_id.is_some() && b.api_key_id.as_deref() == w.api_key_id)
            })
            .collect();
        if applies.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let now = crate::util::now_ms();
        let mut holds: Vec<Hold> = Vec::new();
        for b in applies {
            let (Some(kind), Some(period)) = (Kind::parse(&b.kind), Period::parse(&b.period))
            else {
                continue;
            };
            let worst = match kind {
                Kind::Usd => w.prices.cost_micros(w.input_tokens, 0, w.output_tokens),
                Kind::Tokens => w.input_tokens + w.output_tokens,
            };
            let (start, end) = period.bounds(&self.tz, now);
            match self.try_add(db, b, start, worst).await? {
                Ok(_) => holds.push(Hold {
                    budget_id: b.id.clone(),
                    kind,
                    period_start_ms: start,
                    reserved: worst,
                }),
                Err(used) => {
                    // Nothing stays reserved for a refused call.
                    self.release(db, &holds).await;
                    let whose = if b.api_key_id.is_some() {
                        "This API key's"
                    } else {
                        "Your"
                    };
                    let left = (b.amount - used).max(0);
                    let resets = local_time_text(&self.tz, end);
                    return Ok(Err(OverBudget {
                        message: format!(
                            "{whose} budget of {} a {} has {} left, and this call could use up to {}. It \
                             renews {resets}. Lower max tokens, shorten the conversation, or ask an \
                             administrator.",
                            amount_text(kind, b.amount),
                            period.as_str(),
                            amount_text(kind, left),
                            amount_text(kind, worst),
                        ),
                        retry_after_secs: ((end - now).max(1000) as u64).div_ceil(1000),
                    }));
                }
            }
        }
        Ok(Ok(holds))
    }

    /// Adds `amount` to the period's use if it stays within the budget: `Ok(used)` after, or `Err(used)`.
    async fn try_add(
        &self,
        db: &Db,
        b: &BudgetRow,
        start: i64,
        amount: i64,
    ) -> sqlx::Result<Result<i64, i64>> {
        let Some(local) = &self.local else {
            return self.lease(db, b, start, amount).await;
        };
        let key = (b.id.clone(), start);
        let known = local
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&key);
        if !known {
            let spent = store::spent_since(db, b, start).await?;
            let mut map = local.lock().unwrap_or_else(|e| e.into_inner());
            // A budget's earlier periods are over.
            map.retain(|(id, s), _| id != &b.id || *s >= start);
            map.entry(key.clone()).or_insert(spent);
        }
        let mut map = local.lock().unwrap_or_else(|e| e.into_inner());
        let used = map.entry(key).or_insert(0);
        if *used + amount <= b.amount {
            *used += amount;
            Ok(Ok(*used))
        } else {
            Ok(Err(*used))
        }
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<(String, i64), Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Several instances: takes `amount` from this instance's share of the period, leasing more first when the
    /// share is short. `Err(used)` when the budget has not that much left (`used` not counting this
    /// instance's spare share, which is as good as left).
    async fn lease(
        &self,
        db: &Db,
        b: &BudgetRow,
        start: i64,
        amount: i64,
    ) -> sqlx::Result<Result<i64, i64>> {
        let key = (b.id.clone(), start);
        // Takes `amount` from the share if it has room now, else says what is used beyond this instance's
        // spare share (which is as good as left), with `used` the period's use in the database.
        let take_or_refuse = |used: i64| {
            let mut leases = self.leases();
            let l = leases.entry(key.clone()).or_default();
            if l.spare() >= amount {
                l.used += amount;
                Ok(l.used)
            } else {
                Err((used - l.spare()).max(0))
            }
        };
        // A few rounds: a share just leased can be taken by this instance's other calls first.
        for _ in 0..4 {
            if let Ok(used) = take_or_refuse(0) {
                return Ok(Ok(used));
            }
            let spare = self.leases().get(&key).map_or(0, Lease::spare);
            let need = amount - spare;
            // The larger of what the call needs and a twentieth of the budget (fewer round trips), or just
            // what it needs when less is left.
            let share = need.max(b.amount / 20).min(b.amount.max(need));
            let mut took = self.top_up(db, b, &key, share).await?;
            if took.is_err() && share > need {
                took = self.top_up(db, b, &key, need).await?;
            }
            if let Err(used) = took {
                // Another call of this instance may have just leased room for this one.
                return Ok(take_or_refuse(used));
            }
        }
        let used = store::used(db, b, start).await?;
        Ok(take_or_refuse(used))
    }

    /// Leases `n` more of the period for this instance. The lease is written and counted in a task of its own,
    /// so that a request dropped while it waits (a client gone) cannot leave a share counted in the database
    /// that this instance does not know it holds.
    async fn top_up(
        &self,
        db: &Db,
        b: &BudgetRow,
        key: &(String, i64),
        n: i64,
    ) -> sqlx::Result<Result<(), i64>> {
        let (db, b, key, leases) = (db.clone(), b.clone(), key.clone(), self.leases.clone());
        let task = tokio::spawn(async move {
            let took = store::reserve(&db, &b, key.1, n).await?;
            if took.is_ok() {
                leases
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(key)
                    .or_default()
                    .granted += n;
            }
            sqlx::Result::Ok(took.map(|_| ()))
        });
        task.await
            .map_err(|e| sqlx::Error::Protocol(format!("leasing a budget share failed: {e}")))?
    }

    /// Gives back the spare shares (several instances), so that other instances' calls can use them; a share
    /// its calls overran (a provider counted more than the estimate) writes the overrun instead.
    pub async fn return_spare(&self, db: &Db) {
        let differences: Vec<((String, i64), i64)> = {
            let mut leases = self.leases();
            // The database takes each share's difference; calls still running on it settle against whatever
            // share the key has next (or `budget_usage` itself), which adds up the same.
            leases
                .drain()
                .filter(|(_, l)| l.granted != l.used)
                .map(|(k, l)| (k, l.granted - l.used))
                .collect()
        };
        for (key, n) in differences {
            if let Err(e) = store::adjust(db, &key.0, key.1, -n).await {
                tracing::warn!(error = %e, "giving back a budget share failed: trying again in a second");
                self.leases().entry(key).or_default().granted += n;
            }
        }
    }

    /// Corrects a period's use by `delta`.
    async fn adjust(&self, db: &Db, budget_id: &str, start: i64, delta: i64) -> sqlx::Result<()> {
        if self.local.is_none() {
            // A share this instance still holds takes the correction; a forgotten one is in the database.
            if let Some(l) = self.leases().get_mut(&(budget_id.to_string(), start)) {
                l.used += delta;
                return Ok(());
            }
        }
        match &self.local {
            Some(local) => {
                if let Some(u) = local
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_mut(&(budget_id.to_string(), start))
                {
                    *u += delta;
                }
                Ok(())
            }
            None => store::adjust(db, budget_id, start, delta).await,
        }
    }

    /// What a budget's period starting at `start` has used, its running calls' worst cases included.
    pub async fn used(&self, db: &Db, b: &BudgetRow, start: i64) -> sqlx::Result<i64> {
        if let Some(local) = &self.local
            && let Some(u) = local
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&(b.id.clone(), start))
        {
            return Ok(*u);
        }
        let used = store::used(db, b, start).await?;
        let mine = self
            .leases()
            .get(&(b.id.clone(), start))
            .map_or(0, Lease::spare);
        Ok((used - mine).max(0))
    }

    async fn release(&self, db: &Db, holds: &[Hold]) {
        for h in holds {
            if let Err(e) = self
                .adjust(db, &h.budget_id, h.period_start_ms, -h.reserved)
                .await
            {
                tracing::warn!(error = %e, "releasing a budget reservation failed");
            }
        }
    }

    /// Keeps a started call's holds until it ends; `ticket` gives back what is not settled by then (a request
    /// dropped before the call ran, a call that never reached its provider).
    pub fn hold_until(
        &self,
        calls: &super::CallService,
        ticket: &mut super::running::Ticket,
        call_id: &str,
        holds: Vec<Hold>,
    ) {
        if holds.is_empty() {
            return;
        }
        self.hold(call_id, holds);
        let (calls, call_id) = (calls.clone(), call_id.to_string());
        ticket.on_drop(move || {
            // Settling what is already settled does nothing.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    calls
                        .budgets()
                        .settle(calls.db(), &call_id, Some(0), 0)
                        .await;
                });
            }
        });
    }

    /// Keeps a started call's holds until it ends.
    pub fn hold(&self, call_id: &str, holds: Vec<Hold>) {
        if !holds.is_empty() {
            self.holds
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(call_id.to_string(), holds);
        }
    }

    /// Settles an ended call's holds to what it used: its cost (none without prices) or its tokens.
    pub async fn settle(&self, db: &Db, call_id: &str, cost_micros: Option<i64>, tokens: i64) {
        let holds = self
            .holds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(call_id);
        for h in holds.unwrap_or_default() {
            let used = match h.kind {
                Kind::Usd => cost_micros.unwrap_or(0),
                Kind::Tokens => tokens,
            };
            if let Err(e) = self
                .adjust(db, &h.budget_id, h.period_start_ms, used - h.reserved)
                .await
            {
                tracing::warn!(error = %e, call_id, "settling a budget failed: its worst case stays counted");
            }
        }
    }
}

/// Several instances: gives back the spare budget shares every second, and once more when `stop` is sent
/// (the server's calls have ended).
pub async fn run_returns(calls: super::CallService, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A return under way is never cut short: only the waiting is raced against `stop`.
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = &mut stop => true,
        };
        calls.budgets().return_spare(calls.db()).await;
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn periods_are_days_and_months_of_the_zone() {
        let utc = TimeZone::UTC;
        let now = ms("2026-12-07T10:00:00Z");
        assert_eq!(
            Period::Day.bounds(&utc, now),
            (ms("2026-12-07T00:00:00Z"), ms("2026-12-08T00:00:00Z"))
        );
        assert_eq!(
            Period::Month.bounds(&utc, now),
            (ms("2026-12-01T00:00:00Z"), ms("2027-01-01T00:00:00Z"))
        );
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        // 2026-11-30 20:00 UTC is already 1 December in Tokyo.
        assert_eq!(
            Period::Month.bounds(&tokyo, ms("2026-11-30T20:00:00Z")).0,
            ms("2026-11-30T15:00:00Z")
        );
        assert_eq!(
            local_time_text(&tokyo, ms("2026-11-30T15:00:00Z")),
            "2026-12-01 00:00 (Asia/Tokyo)"
        );
        // A decimal comma is refused, not read as a thousands separator ("0,50" is not 50).
        assert!(parse_amount(Kind::Usd, "0,50").is_err());
        assert_eq!(parse_amount(Kind::Usd, "$0.50"), Ok(500_000));
        assert_eq!(parse_amount(Kind::Tokens, "1,000"), Ok(1000));
    }
}

/// A budget with what its current period has used, as pages and the command line show it.
pub struct BudgetView {
    pub row: BudgetRow,
    pub kind: Kind,
    pub period: Period,
    pub used: i64,
    pub resets_ms: i64,
    /// When it renews, as people read it, in the budget time zone.
    pub renews: String,
}

impl BudgetView {
    pub fn amount_text(&self) -> String {
        amount_text(self.kind, self.row.amount)
    }
    pub fn used_text(&self) -> String {
        amount_text(self.kind, self.used)
    }
    /// When the period renews: `2026-12-09 00:00 (Europe/Paris)`.
    pub fn renews_text(&self) -> &str {
        &self.renews
    }
    /// Whose it is, as the person's own page says it.
    pub fn whose(&self) -> &'static str {
        if self.row.api_key_id.is_some() {
            "One of your API keys"
        } else {
            "You"
        }
    }
    pub fn left_text(&self) -> String {
        amount_text(self.kind, (self.row.amount - self.used).max(0))
    }
}

/// Budgets with their use now: those of `user_id` and of their keys, or every one with `None`.
pub async fn views(
    db: &Db,
    budgets: &Budgets,
    user_id: Option<&str>,
) -> sqlx::Result<Vec<BudgetView>> {
    let tz = budgets.time_zone();
    let keys: Vec<String> = match user_id {
        Some(u) => {
            sqlx::query_scalar("SELECT id FROM api_keys WHERE user_id = $1")
                .bind(u)
                .fetch_all(&db.pool)
                .await?
        }
        None => Vec::new(),
    };
    let now = crate::util::now_ms();
    let mut out = Vec::new();
    for row in store::all(db).await? {
        let mine = match user_id {
            None => true,
            Some(u) => {
                row.user_id.as_deref() == Some(u)
                    || row.api_key_id.as_ref().is_some_and(|k| keys.contains(k))
            }
        };
        let (Some(kind), Some(period)) = (Kind::parse(&row.kind), Period::parse(&row.period))
        else {
            continue;
        };
        if !mine {
            continue;
        }
        let (start, end) = period.bounds(tz, now);
        let used = budgets.used(db, &row, start).await?;
        out.push(BudgetView {
            row,
            kind,
            period,
            used,
            resets_ms: end,
            renews: local_time_text(tz, end),
        });
    }
    Ok(out)
}

/// Reads an amount as typed: dollars (`5`, `$0.50`) for money, a whole number for tokens.
pub fn parse_amount(kind: Kind, text: &str) -> Result<i64, String> {
    let t = text.trim().trim_start_matches('$').replace('_', "");
    match kind {
        Kind::Usd => match t.parse::<f64>() {
            Ok(d) if d.is_finite() && (0.0..=1e9).contains(&d) => Ok((d * 1e6).round() as i64),
            // A comma is refused rather than guessed: "0,50" is half a unit in much of the world.
            _ => Err(format!(
                "The amount must be a number of {}, such as 5 or 0.50 (a point for decimals, no separators).",
                crate::money::label()
            )),
        },
        Kind::Tokens => match t.replace(',', "").parse::<i64>() {
            Ok(n) if (0..=1_000_000_000_000).contains(&n) => Ok(n),
            _ => Err("The amount must be a whole number of tokens.".into()),
        },
    }
}

/// Sets a budget for a person or an API key (one per kind: a second replaces the first).
pub async fn set(
    db: &Db,
    budgets: &Budgets,
    subject: Subject<'_>,
    kind: Kind,
    amount: i64,
    period: Period,
) -> sqlx::Result<String> {
    let (user_id, api_key_id) = match subject {
        Subject::User(u) => (Some(u.to_string()), None),
        Subject::Key(k) => (None, Some(k.to_string())),
    };
    let id = store::set(
        db,
        &BudgetRow {
            id: crate::util::new_id(),
            user_id,
            api_key_id,
            kind: kind.as_str().into(),
            amount,
            period: period.as_str().into(),
            created_ms: crate::util::now_ms(),
        },
    )
    .await?;
    budgets.reload(db).await?;
    Ok(id)
}

/// Whose budget.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    User(&'a str),
    Key(&'a str),
}

//! `llmeta-bench`: measures llmeta against the goals of PRODUCT.md §5, side by side with a baseline in the same
//! run, and prints a table (optionally saved as JSON with `--json FILE`).
//!
//! It starts the repository's mock upstream (in this process) and llmeta (this same binary re-run as a child
//! process with `__serve`, so its memory is measured alone) on loopback ports with a fresh database, seeds data,
//! and drives load with its own async load generator. `--database-url postgres://…/db` repeats every scenario on
//! PostgreSQL (a fresh database is created beside the given one and dropped afterwards).
//!
//! Run: `cargo run --release --bin llmeta-bench -- [--quick] [--json results.json] [--database-url URL]`

mod api;
mod guards;
mod hostile;
mod load;
mod seed;
mod wire;

use clap::Parser;
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "Benchmark llmeta against its performance goals")]
struct Args {
    /// Smaller data and fewer requests: finishes in about two minutes.
    #[arg(long)]
    quick: bool,
    /// Save the results as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Also run every scenario on PostgreSQL (an admin URL such as postgres://postgres@127.0.0.1:5432/test).
    #[arg(long)]
    database_url: Option<String>,
    /// Skip SQLite (with --database-url: PostgreSQL only).
    #[arg(long)]
    no_sqlite: bool,
    /// Run only these scenarios (comma-separated): api, guards, overhead, streaming, streams, history, explorer,
    /// analytics, hostile.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

/// One line of the result table.
struct Row {
    backend: &'static str,
    scenario: String,
    measured: String,
    goal: String,
    met: Option<bool>,
    value: Value,
}

fn main() -> anyhow::Result<()> {
    // The child: llmeta itself.
    if std::env::args().nth(1).as_deref() == Some("__serve") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            // Named apart from the load generator's threads, for profilers.
            .thread_name("llmeta-server")
            .build()?;
        return rt.block_on(async {
            let cli = llmeta::cli::Cli::parse_from(["llmeta", "serve"]);
            llmeta::cli::run(cli).await
        });
    }
    // llmeta's command line, with the server's environment (the API scenarios make their key with it).
    if std::env::args().nth(1).as_deref() == Some("__llmeta") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let args = std::iter::once("llmeta".to_string()).chain(std::env::args().skip(2));
        return rt.block_on(llmeta::cli::run(llmeta::cli::Cli::parse_from(args)));
    }
    // The PDF reader's child process: the server runs this same binary as `extract-pdf FILE`.
    if std::env::args().nth(1).as_deref() == Some("extract-pdf") {
        let file = std::env::args().nth(2).unwrap_or_default();
        std::process::exit(llmeta::files::pdf::run_helper(std::path::Path::new(&file)));
    }
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    sqlx::any::install_default_drivers();
    let mock_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let mock = format!("http://{}/v1", mock_listener.local_addr()?);
    tokio::spawn(llmeta::mock::serve(
        mock_listener,
        llmeta::mock::MockConfig::default(),
    ));

    let mut rows = Vec::new();
    if !args.no_sqlite {
        let r = backend(&args, &mock, None).await?;
        print_table(&r);
        rows.extend(r);
    }
    if let Some(url) = &args.database_url {
        let r = backend(&args, &mock, Some(url)).await?;
        print_table(&r);
        rows.extend(r);
    }
    if let Some(path) = &args.json {
        let out: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({"backend": r.backend, "scenario": r.scenario, "measured": r.measured, "goal": r.goal,
                       "met": r.met, "value": r.value})
            })
            .collect();
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json!({"quick": args.quick, "results": out}))?,
        )?;
        println!("\nsaved {}", path.display());
    }
    let failed = load::FAILED.load(std::sync::atomic::Ordering::Relaxed);
    anyhow::ensure!(
        failed == 0,
        "{failed} requests failed or streams did not start: the numbers above are not valid"
    );
    Ok(())
}

fn print_table(rows: &[Row]) {
    println!();
    println!("| backend | scenario | measured | goal | met |");
    println!("| --- | --- | --- | --- | --- |");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        println!(
            "| {} | {} | {} | {} | {} |",
            r.backend, r.scenario, r.measured, r.goal, met
        );
    }
}

/// The server under test.
struct Server {
    child: Child,
    base: String,
    pool: sqlx::AnyPool,
    _dir: tempfile::TempDir,
    pg: Option<(String, String)>,
    /// The server's environment (the CLI runs with it too).
    env: Vec<(String, String)>,
}

/// The benchmark's account.
pub(crate) const EMAIL: &str = "bench@example.com";

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process has used, in milliseconds.
fn cpu_ms(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // The kernel reports in clock ticks: 100 per second on Linux.
    Some(ticks * 10.0)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

pub(crate) async fn start(
    mock: &str,
    pg_admin: Option<&str>,
    extra_env: &[(&str, &str)],
) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let (url, pg) = match pg_admin {
        Some(admin) => {
            use sqlx::Connection as _;
            let name = format!("llmeta_bench_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::AnyConnection::connect(admin).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await?;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(admin);
            (format!("{base}/{name}"), Some((admin.to_string(), name)))
        }
        None => (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            ),
            None,
        ),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let env: Vec<(String, String)> = [
        ("LLMETA_BIND", format!("127.0.0.1:{port}")),
        ("LLMETA_DATA_DIR", dir.path().display().to_string()),
        ("DATABASE_URL", url.clone()),
        (
            "LLMETA_SECRET_KEY",
            "benchmark-secret-key-0123456789abcdef".into(),
        ),
        ("API_URL", mock.into()),
        ("API_KEY", "sk-bench".into()),
        ("LLMETA_MODELS", "mock-a,mock-b".into()),
        ("LLMETA_DEMO", "true".into()),
        ("LLMETA_DEMO_TOKENS_PER_SEC", "0".into()),
        // One account drives every scenario (up to 1,000 streams at once): no per-user cap.
        ("LLMETA_MAX_CALLS_PER_USER", "0".into()),
        // LLMETA_BENCH_LOG sets the server's log filter, to look inside a run.
        (
            "LLMETA_LOG",
            std::env::var("LLMETA_BENCH_LOG").unwrap_or_else(|_| "error".into()),
        ),
        (
            "LLMETA_DB_MAX_CONNECTIONS",
            if pg.is_some() { "32" } else { "8" }.into(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .chain(
        extra_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    )
    .collect();
    let mut child = Command::new(std::env::current_exe()?)
        .arg("__serve")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            break;
        }
        if let Some(status) = child.try_wait()? {
            anyhow::bail!("llmeta exited before it served ({status}); its log is above");
        }
        if Instant::now() > deadline {
            anyhow::bail!("llmeta did not start");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await?;
    Ok(Server {
        child,
        base,
        pool,
        _dir: dir,
        pg,
        env,
    })
}

pub(crate) async fn drop_pg(pg: Option<(String, String)>) {
    if let Some((admin, name)) = pg {
        use sqlx::Connection as _;
        if let Ok(mut conn) = sqlx::AnyConnection::connect(&admin).await {
            let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// A signed-in browser session: the client with its cookie and the CSRF token.
#[derive(Clone)]
struct Session {
    http: reqwest::Client,
    base: String,
    token: String,
}

pub(crate) async fn admin_session(base: &str) -> anyhow::Result<Session> {
    let http = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(2000)
        .build()?;
    let page = http
        .get(format!("{base}/setup"))
        .send()
        .await?
        .text()
        .await?;
    let token = csrf(&page)?;
    let pw = "benchmark passphrase 1";
    http.post(format!("{base}/setup"))
        .header("origin", base)
        .form(&[
            ("email", EMAIL),
            ("password", pw),
            ("confirm", pw),
            ("csrf_token", &token),
        ])
        .send()
        .await?;
    let page = http
        .get(format!("{base}/chat"))
        .send()
        .await?
        .text()
        .await?;
    Ok(Session {
        http,
        base: base.into(),
        token: csrf(&page)?,
    })
}

fn csrf(html: &str) -> anyhow::Result<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html
        .find(marker)
        .ok_or_else(|| anyhow::anyhow!("no CSRF token"))?
        + marker.len();
    Ok(html[start..start + html[start..].find('"').unwrap_or(0)].to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn backend(args: &Args, mock: &str, pg_admin: Option<&str>) -> anyhow::Result<Vec<Row>> {
    let backend: &'static str = if pg_admin.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    eprintln!("== {backend}");
    let server = start(mock, pg_admin, &[]).await?;
    let pid = server.child.id();
    let mut rows = Vec::new();
    let mut add =
        |scenario: &str, measured: String, goal: &str, met: Option<bool>, value: Value| {
            rows.push(Row {
                backend,
                scenario: scenario.into(),
                measured,
                goal: goal.into(),
                met,
                value,
            });
        };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
    add(
        "memory idle (RSS)",
        format!("{idle:.1} MB"),
        "≤ 25 MB",
        Some(idle <= 25.0),
        json!(idle),
    );

    let s = admin_session(&server.base).await?;
    let direct = reqwest::Client::builder()
        .pool_max_idle_per_host(2000)
        .build()?;
    let n = if args.quick { 600 } else { 6000 };

    // What rate limits and budgets add to a /v1 call: servers of their own, one after the other.
    if args.wants("guards") {
        guards::run(mock, pg_admin, args.quick, &mut add).await?;
    }

    // The OpenAI-compatible API first, on a fresh database.
    if args.wants("api") {
        let key = api::create_key(&server)?;
        api::run(&server, mock, &key, args.quick, &mut add).await?;
    }

    // a. Overhead of a recorded, non-streaming chat call (the UI form path) over the mock itself.
    let levels: &[usize] = if args.wants("overhead") {
        &[1, 32]
    } else {
        &[]
    };
    for &concurrency in levels {
        let requests = if concurrency == 1 { n / 6 } else { n };
        let d = direct.clone();
        let url = mock.to_string() + "/chat/completions";
        let body = json!({"model": "mock-a", "messages": [{"role": "user", "content": "hello there"}], "stream": false});
        let (base_s, _, _) = load::run(concurrency, requests, move |_| {
            let d = d.clone();
            let url = url.clone();
            let body = body.clone();
            async move {
                let t = Instant::now();
                let r = d.post(&url).json(&body).send().await?;
                r.bytes().await?;
                Ok(ms(t.elapsed()))
            }
        })
        .await;
        let s2 = s.clone();
        let cpu_before = cpu_ms(pid);
        let (via, elapsed, errors) = load::run(concurrency, requests, move |_| {
            let s = s2.clone();
            async move {
                let t = Instant::now();
                let r = s
                    .http
                    .post(format!("{}/chat", s.base))
                    .header("origin", &s.base)
                    .form(&[
                        ("content", "hello there"),
                        ("model", "mock-a"),
                        ("csrf_token", &s.token),
                    ])
                    .send()
                    .await?;
                anyhow::ensure!(r.status().as_u16() == 303, "status {}", r.status());
                Ok(ms(t.elapsed()))
            }
        })
        .await;
        let p50 = via.percentile(0.5) - base_s.percentile(0.5);
        let p99 = via.percentile(0.99) - base_s.percentile(0.99);
        let rps = via.0.len() as f64 / elapsed.as_secs_f64();
        add(
            &format!("UI chat call overhead, concurrency {concurrency} (p50 / p99)"),
            format!(
                "{p50:.2} / {p99:.2} ms (direct {:.2} / {:.2}; {errors} errors)",
                base_s.percentile(0.5),
                base_s.percentile(0.99)
            ),
            "p50 ≤ 0.25 ms, p99 ≤ 2 ms",
            Some(p50 <= 0.25 && p99 <= 2.0),
            json!({"p50": p50, "p99": p99, "direct_p50": base_s.percentile(0.5), "via_p50": via.percentile(0.5)}),
        );
        let cpu_per_call_us = cpu_before
            .zip(cpu_ms(pid))
            .map(|(a, b)| (b - a) * 1000.0 / via.0.len().max(1) as f64);
        if concurrency == 32 {
            if let Some(us) = cpu_per_call_us {
                add(
                    "llmeta CPU time per recorded call (UI path, concurrency 32)",
                    format!("{us:.0} µs"),
                    "– (5,000/s on 2 cores leaves < 400 µs for llmeta, client and upstream together)",
                    None,
                    json!(us),
                );
            }
            add(
                "recorded calls per second (UI path, concurrency 32)",
                format!("{rps:.0}/s"),
                "≥ 5,000/s",
                Some(rps >= 5000.0),
                json!(rps),
            );
        }
    }

    // b. Time to first token added to a streamed call: 50 tokens at 5 ms, concurrency 32.
    if args.wants("streaming") {
        let requests = if args.quick { 128 } else { 640 };
        let prompt = "stream mock:tokens=50 mock:delay_ms=5";
        let d = direct.clone();
        let url = mock.to_string() + "/chat/completions";
        let body = json!({"model": "mock-a", "messages": [{"role": "user", "content": prompt}], "stream": true});
        let (base_s, _, _) = load::run(32, requests, move |_| {
            let d = d.clone();
            let url = url.clone();
            let body = body.clone();
            async move {
                let t = Instant::now();
                let mut r = d.post(&url).json(&body).send().await?;
                let mut first = None;
                while let Some(chunk) = r.chunk().await? {
                    // Text, not the mock's opening `"content":null` role chunk (llama.cpp's shape).
                    if first.is_none() && String::from_utf8_lossy(&chunk).contains("\"content\":\"")
                    {
                        first = Some(ms(t.elapsed()));
                    }
                }
                first.ok_or_else(|| anyhow::anyhow!("no token"))
            }
        })
        .await;
        let s2 = s.clone();
        let (via, _, errors) = load::run(32, requests, move |_| {
            let s = s2.clone();
            async move {
                let t = Instant::now();
                let mut r = s
                    .http
                    .post(format!("{}/chat", s.base))
                    .header("origin", &s.base)
                    .header("accept", "text/event-stream")
                    .header("x-csrf-token", &s.token)
                    .form(&[("content", prompt), ("model", "mock-a")])
                    .send()
                    .await?;
                let mut first = None;
                while let Some(chunk) = r.chunk().await? {
                    if first.is_none() && String::from_utf8_lossy(&chunk).contains("event: delta") {
                        first = Some(ms(t.elapsed()));
                    }
                }
                first.ok_or_else(|| anyhow::anyhow!("no token"))
            }
        })
        .await;
        let p50 = via.percentile(0.5) - base_s.percentile(0.5);
        let p99 = via.percentile(0.99) - base_s.percentile(0.99);
        add(
            "TTFT added to a streamed call, concurrency 32 (p50 / p99)",
            format!(
                "{p50:.2} / {p99:.2} ms (direct {:.2} / {:.2}; {errors} errors)",
                base_s.percentile(0.5),
                base_s.percentile(0.99)
            ),
            "p99 ≤ 1 ms",
            Some(p99 <= 1.0),
            json!({"p50": p50, "p99": p99}),
        );
    }

    // e. Memory with 1,000 open streams.
    if args.wants("streams") {
        let streams = if args.quick { 200 } else { 1000 };
        let mut open = Vec::new();
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(streams);
        for _ in 0..streams {
            let s = s.clone();
            let tx = tx.clone();
            open.push(tokio::spawn(async move {
                let r = s
                    .http
                    .post(format!("{}/chat", s.base))
                    .header("origin", &s.base)
                    .header("accept", "text/event-stream")
                    .header("x-csrf-token", &s.token)
                    .form(&[
                        ("content", "hold mock:tokens=600 mock:delay_ms=50"),
                        ("model", "mock-a"),
                    ])
                    .send()
                    .await;
                if let Ok(mut r) = r {
                    let mut told = false;
                    while let Ok(Some(chunk)) = r.chunk().await {
                        if !told && String::from_utf8_lossy(&chunk).contains("event: delta") {
                            let _ = tx.send(()).await;
                            told = true;
                        }
                    }
                }
            }));
        }
        let mut started = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while started < streams && Instant::now() < deadline {
            if tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .ok()
                .flatten()
                .is_some()
            {
                started += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss = rss_kib(pid).unwrap_or(0) as f64 / 1024.0;
        load::FAILED.fetch_add(streams - started, std::sync::atomic::Ordering::Relaxed);
        add(
            &format!("memory with {streams} open streams (RSS)"),
            format!("{rss:.1} MB ({started} streaming)"),
            "≤ 150 MB at 1,000",
            Some(rss <= 150.0 && started == streams),
            json!({"rss_mb": rss, "streams": started}),
        );
        for o in open {
            o.abort();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }

    let user_id: String =
        sqlx::query_scalar("SELECT id FROM users WHERE email = 'bench@example.com'")
            .fetch_one(&server.pool)
            .await?;

    // c. History page for a user with 100,000 messages in 10,000 conversations.
    if args.wants("history") {
        let (convs, per): (i64, i64) = if args.quick { (1000, 10) } else { (10_000, 10) };
        let t = Instant::now();
        seed::history(&server.pool, &user_id, convs, per).await?;
        eprintln!(
            "seeded {} messages in {:.1} s",
            convs * per,
            t.elapsed().as_secs_f64()
        );
        let s2 = s.clone();
        let (lat, _, errors) = load::run(1, if args.quick { 100 } else { 300 }, move |_| {
            let s = s2.clone();
            async move {
                let t = Instant::now();
                let r = s.http.get(format!("{}/history", s.base)).send().await?;
                anyhow::ensure!(r.status().is_success());
                r.bytes().await?;
                Ok(ms(t.elapsed()))
            }
        })
        .await;
        add(
            &format!("history page, {} messages (p50 / p99)", convs * per),
            format!(
                "{:.2} / {:.2} ms ({errors} errors)",
                lat.percentile(0.5),
                lat.percentile(0.99)
            ),
            "p50 ≤ 10 ms",
            Some(lat.percentile(0.5) <= 10.0),
            json!({"p50": lat.percentile(0.5), "p99": lat.percentile(0.99)}),
        );
    }

    // d. Admin call explorer, first page filtered by model, over 1,000,000 call records.
    if args.wants("explorer") {
        let n = if args.quick { 100_000 } else { 1_000_000 };
        let t = Instant::now();
        seed::calls(&server.pool, &user_id, n).await?;
        let seeded = t.elapsed().as_secs_f64();
        eprintln!("seeded {n} calls in {seeded:.1} s");
        add(
            &format!("seeding {n} call records"),
            format!("{seeded:.1} s"),
            "minutes at most",
            Some(seeded < 300.0),
            json!(seeded),
        );
        for filter in [
            "model=gpt-x",
            "status=error",
            "source=api",
            "provider=default",
            "user=bench%40example.com",
            "min_latency=1000",
            "min_tokens=1000",
            "sort=cost",
        ] {
            let s2 = s.clone();
            let path = format!("/admin/calls?{filter}");
            let (lat, _, errors) = load::run(1, if args.quick { 30 } else { 100 }, move |_| {
                let s = s2.clone();
                let path = path.clone();
                async move {
                    let t = Instant::now();
                    let r = s.http.get(format!("{}{path}", s.base)).send().await?;
                    anyhow::ensure!(r.status().is_success());
                    r.bytes().await?;
                    Ok(ms(t.elapsed()))
                }
            })
            .await;
            add(
                &format!("admin explorer first page, {filter}, {n} calls (p50 / p99)"),
                format!(
                    "{:.2} / {:.2} ms ({errors} errors)",
                    lat.percentile(0.5),
                    lat.percentile(0.99)
                ),
                "p50 < 100 ms",
                Some(lat.percentile(0.5) < 100.0),
                json!({"filter": filter, "p50": lat.percentile(0.5), "p99": lat.percentile(0.99)}),
            );
        }
    }

    // e. The analytics page (every chart's query) over the person's 1,000,000 call records, for several filters.
    if args.wants("analytics") {
        let n = if args.quick { 20_000 } else { 1_000_000 };
        let have: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE user_id = $1")
            .bind(&user_id)
            .fetch_one(&server.pool)
            .await?;
        if have < n {
            let t = Instant::now();
            seed::calls(&server.pool, &user_id, n).await?;
            eprintln!("seeded {n} calls in {:.1} s", t.elapsed().as_secs_f64());
        }
        // The explorer scenario may have seeded more already: the rows say how many there are.
        let n = have.max(n);
        let filters: &[&str] = if args.quick {
            &["period=7d", "period=90d&model=gpt-x"]
        } else {
            &[
                "period=30d",
                "period=90d",
                "period=7d",
                "period=24h",
                "period=90d&model=gpt-x",
                "period=90d&status=error",
                "period=90d&source=api&tz=America/New_York",
            ]
        };
        for filter in filters {
            let s2 = s.clone();
            let path = format!("/analytics?{filter}");
            // A few runs: one page over a million calls takes seconds (see the results).
            let (lat, _, errors) = load::run(1, if args.quick { 2 } else { 5 }, move |_| {
                let s = s2.clone();
                let path = path.clone();
                async move {
                    let t = Instant::now();
                    let r = s.http.get(format!("{}{path}", s.base)).send().await?;
                    anyhow::ensure!(r.status().is_success(), "{path}: {}", r.status());
                    r.bytes().await?;
                    Ok(ms(t.elapsed()))
                }
            })
            .await;
            add(
                &format!("analytics page, {filter}, {n} calls (p50 / p99)"),
                format!(
                    "{:.1} / {:.1} ms ({errors} errors)",
                    lat.percentile(0.5),
                    lat.percentile(0.99)
                ),
                "p50 ≤ 150 ms",
                Some(lat.percentile(0.5) <= 150.0),
                json!({"filter": filter, "p50": lat.percentile(0.5), "p99": lat.percentile(0.99)}),
            );
        }
    }

    // f. Peak memory added by each hostile input (the full sizes of the original reports; a tenth with --quick).
    if args.wants("hostile") {
        let scale = if args.quick { 0.1 } else { 1.0 };
        for o in hostile::run(&s, pid, scale).await? {
            add(
                &format!("peak memory added: {}", o.name),
                format!(
                    "{:.1} MB ({:.1} s, HTTP {})",
                    o.added_mb, o.seconds, o.statuses
                ),
                "≤ 256 MB",
                Some(o.added_mb <= 256.0),
                json!({"added_mb": o.added_mb, "seconds": o.seconds, "statuses": o.statuses}),
            );
        }
    }

    let pg = server.pg.clone();
    drop(server);
    drop_pg(pg).await;
    Ok(rows)
}

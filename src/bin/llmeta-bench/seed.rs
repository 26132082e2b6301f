//! Bulk data for the page scenarios, generated inside the database by one `INSERT … SELECT` per 100,000 rows
//! (a recursive CTE on SQLite, `generate_series` on PostgreSQL): a million rows in seconds, where row-by-row
//! parameter binding through the `Any` driver manages a few thousand rows a second.

use sqlx::AnyPool;

const CHUNK: i64 = 100_000;

fn is_pg(pool: &AnyPool) -> bool {
    pool.connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
}

/// After a bulk load PostgreSQL's autovacuum soon gathers fresh statistics; doing it at once keeps it from
/// landing in the middle of a measurement, and measures the plans a running server would have.
async fn settle(pool: &AnyPool, tables: &str) -> anyhow::Result<()> {
    if is_pg(pool) {
        sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {tables}")))
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// The row numbers `$1 .. $1 + $2` as `s(i)`, and a zero-padded text of `i` with `prefix`.
fn rows_and_label(pg: bool, prefix: &str, width: usize) -> (String, String) {
    if pg {
        (
            "generate_series(CAST($1 AS BIGINT), CAST($1 AS BIGINT) + $2 - 1) AS s(i)".to_string(),
            format!("'{prefix}' || lpad(CAST(i AS TEXT), {width}, '0')"),
        )
    } else {
        ("s".to_string(), format!("printf('{prefix}%0{width}d', i)"))
    }
}

/// Runs `select` (which reads `i` from the row source) as an insert over `n` rows, in chunks.
async fn generate(
    pool: &AnyPool,
    insert: &str,
    select: &str,
    n: i64,
    extra: &[&str],
) -> anyhow::Result<()> {
    let pg = is_pg(pool);
    let mut start = 0;
    while start < n {
        let count = CHUNK.min(n - start);
        let sql = if pg {
            format!("{insert} {select}")
        } else {
            format!(
                "WITH RECURSIVE s(i) AS (SELECT $1 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < $1 + $2) {insert} {select}"
            )
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(start)
            .bind(count);
        for e in extra {
            q = q.bind(e.to_string());
        }
        q.execute(pool).await?;
        start += count;
    }
    Ok(())
}

/// `conversations` conversations of `per` messages each for `user_id`, spread over the last year.
pub async fn history(
    pool: &AnyPool,
    user_id: &str,
    conversations: i64,
    per: i64,
) -> anyhow::Result<()> {
    let pg = is_pg(pool);
    let now = llmeta::util::now_ms().to_string();
    let (src, conv_id) = rows_and_label(pg, "bench-c-", 8);
    let head = if pg {
        format!(
            "'bench-m-' || lpad(CAST(i * {per} + {last} AS TEXT), 10, '0')",
            last = per - 1
        )
    } else {
        format!(
            "printf('bench-m-%010d', i * {per} + {last})",
            last = per - 1
        )
    };
    generate(
        pool,
        "INSERT INTO conversations (id, user_id, title, created_ms, updated_ms, head_id, models, message_count, tokens)",
        &format!(
            "SELECT {conv_id}, $3, 'Benchmark conversation ' || CAST(i AS TEXT), CAST($4 AS BIGINT) - i * 3137000 - 100000, \
             CAST($4 AS BIGINT) - i * 3137000, {head}, 'mock-a', {per}, {tokens} FROM {src}",
            tokens = per * 40
        ),
        conversations,
        &[user_id, &now],
    )
    .await?;
    let (src, msg_id) = rows_and_label(pg, "bench-m-", 10);
    let (conv_of, parent) = if pg {
        (
            format!("'bench-c-' || lpad(CAST(i / {per} AS TEXT), 8, '0')"),
            "CASE WHEN i % {per} = 0 THEN NULL ELSE 'bench-m-' || lpad(CAST(i - 1 AS TEXT), 10, '0') END".replace("{per}", &per.to_string()),
        )
    } else {
        (
            format!("printf('bench-c-%08d', i / {per})"),
            format!("CASE WHEN i % {per} = 0 THEN NULL ELSE printf('bench-m-%010d', i - 1) END"),
        )
    };
    generate(
        pool,
        "INSERT INTO messages (id, conversation_id, user_id, parent_id, role, content, token_estimate, created_ms)",
        &format!(
            "SELECT {msg_id}, {conv_of}, $3, {parent}, CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, \
             'benchmark message ' || CAST(i AS TEXT) || ': the quick brown fox jumps over the lazy dog', 20, \
             CAST($4 AS BIGINT) - (i / {per}) * 3137000 - ({per} - i % {per}) * 1000 FROM {src}"
        ),
        conversations * per,
        &[user_id, &now],
    )
    .await?;
    settle(pool, "conversations, messages").await
}

/// `n` call records for `user_id`, spread like real use over the last 90 days: four models, both sources,
/// streamed and not, mostly successful with some errors and cancellations, temperatures, top P and max tokens
/// in every range of the parameter-effects view (some not set), answers cut by max tokens, prices.
pub async fn calls(pool: &AnyPool, user_id: &str, n: i64) -> anyhow::Result<()> {
    let pg = is_pg(pool);
    let now = llmeta::util::now_ms().to_string();
    let (src, id) = rows_and_label(pg, "bench-call-", 9);
    let model =
        "CASE i % 4 WHEN 0 THEN 'mock-a' WHEN 1 THEN 'mock-b' WHEN 2 THEN 'gpt-x' ELSE 'demo' END";
    // Spread with different moduli so that the columns do not move in lockstep.
    generate(
        pool,
        "INSERT INTO calls (id, user_id, source, provider, model, upstream_model, streamed, request_json, sent_ms, \
         status, input_tokens, output_tokens, cached_input_tokens, usage_source, latency_ms, ttft_ms, tokens_per_sec, \
         cost_micros, price_input_micros, price_output_micros, finish_reason, temperature, top_p, max_tokens)",
        &format!(
            "SELECT {id}, $3, CASE WHEN i % 10 = 0 THEN 'api' ELSE 'ui' END, 'default', {model}, {model}, i % 2, \
             '{{\"model\":\"bench\",\"messages\":[]}}', CAST($4 AS BIGINT) - (i % 7776000) * 1000, \
             CASE WHEN i % 50 = 0 THEN 'error' WHEN i % 97 = 0 THEN 'cancelled' ELSE 'ok' END, 100 + i % 900, \
             20 + i % 400, (i % 3) * 50, 'provider', CAST(50 + (i % 2000) * 0.7 AS DOUBLE PRECISION), \
             CASE WHEN i % 2 = 1 THEN CAST(10 + (i % 300) * 0.3 AS DOUBLE PRECISION) END, \
             CAST(20 + (i % 170) * 0.5 AS DOUBLE PRECISION), CASE WHEN i % 4 = 3 THEN NULL ELSE i % 5000 END, \
             CASE WHEN i % 4 = 3 THEN 0 ELSE 150000 END, CASE WHEN i % 4 = 3 THEN 0 ELSE 600000 END, \
             CASE WHEN i % 50 = 0 THEN NULL WHEN i % 13 = 0 THEN 'length' ELSE 'stop' END, \
             CASE i % 7 WHEN 0 THEN NULL WHEN 1 THEN 0 ELSE CAST((i % 11) * 0.2 AS DOUBLE PRECISION) END, \
             CASE WHEN i % 3 = 0 THEN NULL ELSE CAST(0.5 + (i % 6) * 0.1 AS DOUBLE PRECISION) END, \
             CASE i % 5 WHEN 0 THEN NULL WHEN 1 THEN 256 WHEN 2 THEN 1024 WHEN 3 THEN 4096 ELSE 32768 END FROM {src}"
        ),
        n,
        &[user_id, &now],
    )
    .await?;
    settle(pool, "calls").await
}

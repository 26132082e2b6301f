//! Bulk data for the page scenarios, written straight into the server's database in large transactions
//! with multi-row inserts (a million rows in well under a minute).

use sqlx::AnyPool;

enum V {
    I(i64),
    T(String),
    F(f64),
}

/// Inserts rows of `columns` in batches; `float_cols` are bound as text and cast (see `db::calls::float`).
async fn insert_rows(
    pool: &AnyPool,
    table: &str,
    columns: &[&str],
    float_cols: &[&str],
    rows: Vec<Vec<V>>,
) -> anyhow::Result<()> {
    let per_batch = (30_000 / columns.len()).min(100);
    let mut tx = pool.begin().await?;
    let mut in_tx = 0;
    for chunk in rows.chunks(per_batch) {
        let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        let mut n = 0;
        for (r, _) in chunk.iter().enumerate() {
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for (c, col) in columns.iter().enumerate() {
                n += 1;
                if c > 0 {
                    sql.push_str(", ");
                }
                if float_cols.contains(col) {
                    sql.push_str(&format!("CAST(${n} AS DOUBLE PRECISION)"));
                } else {
                    sql.push_str(&format!("${n}"));
                }
            }
            sql.push(')');
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in chunk {
            for v in row {
                q = match v {
                    V::I(i) => q.bind(*i),
                    V::T(s) => q.bind(s.clone()),
                    V::F(f) => q.bind(f.to_string()),
                };
            }
        }
        q.execute(&mut *tx).await?;
        in_tx += chunk.len();
        if in_tx >= 50_000 {
            tx.commit().await?;
            tx = pool.begin().await?;
            in_tx = 0;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// `conversations` conversations of `per` messages each for `user_id`, spread over the last year.
pub async fn history(
    pool: &AnyPool,
    user_id: &str,
    conversations: usize,
    per: usize,
) -> anyhow::Result<()> {
    let now = llmeta::util::now_ms();
    let mut convs = Vec::with_capacity(conversations);
    let mut msgs = Vec::with_capacity(conversations * per);
    for c in 0..conversations {
        let id = format!("bench-c-{c:08}");
        let updated = now - (c as i64) * 3_137_000;
        let mut parent: Option<String> = None;
        for m in 0..per {
            let mid = format!("bench-m-{c:08}-{m:04}");
            msgs.push(vec![
                V::T(mid.clone()),
                V::T(id.clone()),
                V::T(user_id.to_string()),
                parent.clone().map(V::T).unwrap_or(V::T(String::new())),
                V::T(if m % 2 == 0 { "user" } else { "assistant" }.into()),
                V::T(format!("benchmark message {m} of conversation {c}: the quick brown fox jumps over the lazy dog")),
                V::I(20),
                V::I(updated - ((per - m) as i64) * 1000),
            ]);
            parent = Some(mid);
        }
        convs.push(vec![
            V::T(id),
            V::T(user_id.to_string()),
            V::T(format!("Benchmark conversation {c}")),
            V::I(updated - 100_000),
            V::I(updated),
            V::T(parent.unwrap_or_default()),
            V::T("mock-a".into()),
            V::I(per as i64),
            V::I(per as i64 * 40),
        ]);
    }
    insert_rows(
        pool,
        "conversations",
        &[
            "id",
            "user_id",
            "title",
            "created_ms",
            "updated_ms",
            "head_id",
            "models",
            "message_count",
            "tokens",
        ],
        &[],
        convs,
    )
    .await?;
    insert_rows(
        pool,
        "messages",
        &[
            "id",
            "conversation_id",
            "user_id",
            "parent_id",
            "role",
            "content",
            "token_estimate",
            "created_ms",
        ],
        &[],
        msgs,
    )
    .await
}

/// `n` call records for `user_id`, spread over models, statuses and the last 90 days.
pub async fn calls(pool: &AnyPool, user_id: &str, n: usize, models: &[&str]) -> anyhow::Result<()> {
    let now = llmeta::util::now_ms();
    let mut rows = Vec::with_capacity(n.min(200_000));
    let columns = [
        "id",
        "user_id",
        "source",
        "provider",
        "model",
        "upstream_model",
        "streamed",
        "request_json",
        "sent_ms",
        "status",
        "input_tokens",
        "output_tokens",
        "usage_source",
        "latency_ms",
        "ttft_ms",
        "cost_micros",
        "finish_reason",
    ];
    for i in 0..n {
        let model = models[i % models.len()];
        rows.push(vec![
            V::T(format!("bench-call-{i:09}")),
            V::T(user_id.to_string()),
            V::T(if i % 10 == 0 { "api" } else { "ui" }.into()),
            V::T("default".into()),
            V::T(model.into()),
            V::T(model.into()),
            V::I((i % 2) as i64),
            V::T("{\"model\":\"bench\",\"messages\":[]}".into()),
            V::I(now - (i as i64 % 7_776_000) * 1000),
            V::T(if i % 50 == 0 { "error" } else { "ok" }.into()),
            V::I(100 + (i % 900) as i64),
            V::I(20 + (i % 400) as i64),
            V::T("provider".into()),
            V::F(50.0 + (i % 2000) as f64 * 0.7),
            V::F(10.0 + (i % 300) as f64 * 0.3),
            V::I((i % 5000) as i64),
            V::T("stop".into()),
        ]);
        if rows.len() == 200_000 {
            insert_rows(
                pool,
                "calls",
                &columns,
                &["latency_ms", "ttft_ms"],
                std::mem::take(&mut rows),
            )
            .await?;
        }
    }
    insert_rows(pool, "calls", &columns, &["latency_ms", "ttft_ms"], rows).await
}

-- Budgets an administrator sets for a person or an API key: money (micro-units) or tokens, per day or month
-- (in the configured budget time zone). One per subject and kind.
CREATE TABLE budgets (
    id          TEXT PRIMARY KEY,
    user_id     TEXT REFERENCES users (id) ON DELETE CASCADE,
    api_key_id  TEXT REFERENCES api_keys (id) ON DELETE CASCADE,
    kind        TEXT NOT NULL CHECK (kind IN ('usd', 'tokens')),
    amount      BIGINT NOT NULL,
    period      TEXT NOT NULL CHECK (period IN ('day', 'month')),
    created_ms  BIGINT NOT NULL,
    CHECK ((user_id IS NULL) <> (api_key_id IS NULL))
);
CREATE UNIQUE INDEX budgets_user_kind ON budgets (user_id, kind) WHERE user_id IS NOT NULL;
CREATE UNIQUE INDEX budgets_key_kind ON budgets (api_key_id, kind) WHERE api_key_id IS NOT NULL;

-- What a budget's period has used: the cost (or tokens) of its finished calls plus the worst case of those
-- running, reserved as they start and settled to what they cost as they end (src/calls/budgets.rs).
CREATE TABLE budget_usage (
    budget_id       TEXT NOT NULL REFERENCES budgets (id) ON DELETE CASCADE,
    period_start_ms BIGINT NOT NULL,
    used            BIGINT NOT NULL,
    PRIMARY KEY (budget_id, period_start_ms)
);

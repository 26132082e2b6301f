-- Accounts, sessions, login throttling, health probes.
-- Conventions: ids are UUIDv7 text, times are unix milliseconds, flags are nullable timestamps.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL,                 -- normalised to lower case
    display_name  TEXT NOT NULL DEFAULT '',
    password_hash TEXT,                          -- argon2id PHC string; NULL for accounts without a password
    role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    created_ms    BIGINT NOT NULL,
    last_login_ms BIGINT,
    disabled_ms   BIGINT                         -- set when an admin deactivates the account
);
CREATE UNIQUE INDEX users_email ON users (email);

-- Server-side sessions. The id is the SHA-256 of the cookie value, so a copy of the table opens no session.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_ms   BIGINT NOT NULL,
    expires_ms   BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    ip           TEXT NOT NULL DEFAULT '',
    user_agent   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_ms);

-- Failed sign-in counters per key ("ip:1.2.3.4", "account:a@b.c") in a fixed window; shared by all instances.
CREATE TABLE login_throttle (
    key             TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    window_start_ms BIGINT NOT NULL
);

-- Rows written and deleted by POST /health to prove the database accepts writes.
CREATE TABLE health_probes (
    id         TEXT PRIMARY KEY,
    created_ms BIGINT NOT NULL
);

-- TEMPORARY (replaced by the API keys branch at merge): the columns the call service records.
CREATE TABLE api_keys (id TEXT PRIMARY KEY, user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE, name TEXT NOT NULL, lookup TEXT NOT NULL UNIQUE, secret_hash TEXT NOT NULL, last4 TEXT NOT NULL, created_ms BIGINT NOT NULL, last_used_ms BIGINT, expires_ms BIGINT, revoked_ms BIGINT);
ALTER TABLE calls ADD COLUMN api_key_id TEXT;

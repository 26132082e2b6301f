-- Keys for the OpenAI-compatible API under /v1. A key reads `sk-llmeta-<lookup>_<secret>`: the lookup id finds
-- its row, and only the SHA-256 of the secret is kept, so a copy of this table opens nothing. (The secret is
-- 256 random bits, so a fast hash is enough: there is nothing to guess as there is with a password.)
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    lookup       TEXT NOT NULL,                 -- the public part after `sk-llmeta-`
    secret_hash  TEXT NOT NULL,                 -- lowercase hex SHA-256 of the secret part
    last4        TEXT NOT NULL,                 -- last 4 characters of the whole key, shown as `sk-…abcd`
    created_ms   BIGINT NOT NULL,
    last_used_ms BIGINT,                        -- written at most once a minute per key and instance
    expires_ms   BIGINT,
    revoked_ms   BIGINT
);
CREATE UNIQUE INDEX api_keys_lookup ON api_keys (lookup);
-- A name picks one key among a person's keys that are not revoked (the CLI revokes by name).
CREATE UNIQUE INDEX api_keys_live_name ON api_keys (user_id, name) WHERE revoked_ms IS NULL;
CREATE INDEX api_keys_user ON api_keys (user_id, created_ms DESC);
CREATE INDEX api_keys_created ON api_keys (created_ms DESC);

-- The key an API call came with (NULL for calls made in the pages).
ALTER TABLE calls ADD COLUMN api_key_id TEXT;
CREATE INDEX calls_key_sent ON calls (api_key_id, sent_ms DESC);

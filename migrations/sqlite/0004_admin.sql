-- Password reset links (admin-issued), and indexes for the admin call explorer's filters.

CREATE TABLE password_resets (
    id         TEXT PRIMARY KEY,                 -- SHA-256 of the token in the link
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms    BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);

CREATE INDEX calls_provider_sent ON calls (provider, sent_ms DESC);
CREATE INDEX calls_status_sent ON calls (status, sent_ms DESC);
CREATE INDEX calls_source_sent ON calls (source, sent_ms DESC);
-- The explorer's other sort orders (the expressions must match the queries').
CREATE INDEX calls_tokens ON calls ((COALESCE(input_tokens, 0) + COALESCE(output_tokens, 0)));
CREATE INDEX calls_latency ON calls ((COALESCE(latency_ms, -1)));
CREATE INDEX calls_cost ON calls ((COALESCE(cost_micros, -1)));

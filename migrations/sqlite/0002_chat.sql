-- Conversations, messages, and one record per model call: the table every analysis reads.

CREATE TABLE conversations (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title         TEXT NOT NULL DEFAULT '',
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL,                -- last activity
    pinned_ms     BIGINT,
    head_id       TEXT,                           -- last message of the branch being shown
    models        TEXT NOT NULL DEFAULT '',       -- model ids used, comma-separated, in order of first use
    message_count BIGINT NOT NULL DEFAULT 0,
    tokens        BIGINT NOT NULL DEFAULT 0       -- input + output tokens of all calls
);
CREATE INDEX conversations_user_updated ON conversations (user_id, updated_ms DESC, id DESC);

-- Messages form a tree through parent_id: regenerating an answer adds a sibling, and the conversation's
-- head_id says which branch is shown.
CREATE TABLE messages (
    id              TEXT PRIMARY KEY,
    conversation_id TEXT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    parent_id       TEXT,
    role            TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
    content         TEXT NOT NULL,
    reasoning       TEXT NOT NULL DEFAULT '',
    status          TEXT NOT NULL DEFAULT 'ok'
                    CHECK (status IN ('ok', 'streaming', 'error', 'cancelled', 'interrupted')),
    model_id        TEXT,
    call_id         TEXT,
    token_estimate  BIGINT NOT NULL DEFAULT 0,    -- tiktoken estimate of content, for context fitting
    created_ms      BIGINT NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, created_ms);
CREATE INDEX messages_created ON messages (created_ms);

CREATE TABLE calls (
    id                    TEXT PRIMARY KEY,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id       TEXT REFERENCES conversations (id) ON DELETE CASCADE,
    request_message_id    TEXT,
    response_message_id   TEXT,
    source                TEXT NOT NULL CHECK (source IN ('ui', 'api')),
    provider              TEXT NOT NULL,
    model                 TEXT NOT NULL,          -- llmeta model id requested
    upstream_model        TEXT NOT NULL,          -- name sent to the provider
    response_model        TEXT,                   -- name the provider says answered
    provider_response_id  TEXT,
    streamed              BIGINT NOT NULL,        -- 1 = SSE, 0 = one JSON body
    temperature           DOUBLE PRECISION,
    top_p                 DOUBLE PRECISION,
    top_k                 BIGINT,
    max_tokens            BIGINT,
    seed                  BIGINT,
    presence_penalty      DOUBLE PRECISION,
    frequency_penalty     DOUBLE PRECISION,
    stop                  TEXT,                   -- JSON array
    system_prompt         TEXT,
    params_dropped        TEXT NOT NULL DEFAULT '', -- parameters the provider does not accept, comma-separated
    request_json          TEXT NOT NULL,          -- the exact body sent (never contains the key)
    context_messages      BIGINT NOT NULL DEFAULT 0,
    context_dropped       BIGINT NOT NULL DEFAULT 0, -- earlier messages left out to fit the window
    input_tokens          BIGINT,
    output_tokens         BIGINT,
    cached_input_tokens   BIGINT,
    reasoning_tokens      BIGINT,
    usage_source          TEXT NOT NULL DEFAULT 'none' CHECK (usage_source IN ('provider', 'estimate', 'none')),
    sent_ms               BIGINT NOT NULL,        -- wall clock, unix ms
    first_byte_ms         BIGINT,
    first_token_ms        BIGINT,
    ended_ms              BIGINT,
    latency_ms            DOUBLE PRECISION,       -- durations from a monotonic clock
    first_byte_latency_ms DOUBLE PRECISION,
    ttft_ms               DOUBLE PRECISION,
    tokens_per_sec        DOUBLE PRECISION,       -- output tokens after the first, over the time after the first
    finish_reason         TEXT,
    status                TEXT NOT NULL CHECK (status IN ('pending', 'ok', 'error', 'cancelled', 'interrupted')),
    error_class           TEXT,
    error_message         TEXT,
    http_status           BIGINT,
    cost_micros           BIGINT,                 -- micro-dollars, from the prices below
    price_input_micros    BIGINT NOT NULL DEFAULT 0,  -- per million tokens, as they were at call time
    price_cached_input_micros BIGINT NOT NULL DEFAULT 0,
    price_output_micros   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX calls_user_sent ON calls (user_id, sent_ms DESC);
CREATE INDEX calls_conversation ON calls (conversation_id);
CREATE INDEX calls_model_sent ON calls (model, sent_ms DESC);
CREATE INDEX calls_sent ON calls (sent_ms DESC);

-- The model and parameters a person last used, to fill the chat form next time.
CREATE TABLE user_prefs (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    model_id    TEXT NOT NULL,
    params_json TEXT NOT NULL,
    updated_ms  BIGINT NOT NULL
);

-- OpenAI-compatible providers added in the administration area, beside those of the configuration; offered
-- from the moment they are saved. The key is sealed with the server's secret key (src/sealing.rs), or named by
-- the environment variable that holds it.
CREATE TABLE stored_providers (
    name            TEXT PRIMARY KEY,
    base_url        TEXT NOT NULL,
    api_key_sealed  TEXT,
    api_key_env     TEXT,
    discover_models BIGINT NOT NULL DEFAULT 1,
    updated_ms      BIGINT NOT NULL
);

-- An administrator's settings for a model, over the configuration's and the provider's: NULL keeps those.
-- With `provider` set, the row also adds a model that the provider did not list.
CREATE TABLE model_settings (
    model_id            TEXT PRIMARY KEY,
    provider            TEXT,
    upstream            TEXT,
    display_name        TEXT,
    context_window      BIGINT,
    max_output_tokens   BIGINT,
    -- Micro-dollars per million tokens.
    price_input         BIGINT,
    price_cached_input  BIGINT,
    price_output        BIGINT,
    -- Default parameters, as the chat form's fields (JSON).
    defaults_json       TEXT,
    updated_ms          BIGINT NOT NULL
);

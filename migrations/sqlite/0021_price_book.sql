-- The price book: a model's prices from a date on (micro-units per million tokens), entered by an
-- administrator. A call is charged at the row in effect when it starts (the newest whose effective_ms is not
-- after it), else at the model's configured prices, and keeps those prices on its record.
CREATE TABLE model_prices (
    id                  TEXT PRIMARY KEY,
    model_id            TEXT NOT NULL,
    effective_ms        BIGINT NOT NULL,
    input_micros        BIGINT NOT NULL,
    cached_input_micros BIGINT NOT NULL,
    output_micros       BIGINT NOT NULL,
    created_ms          BIGINT NOT NULL,
    UNIQUE (model_id, effective_ms)
);

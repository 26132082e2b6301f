-- The model and parameters a conversation was last continued with (the form's values as typed, JSON): its
-- composer offers them again, whatever the person used elsewhere since.
ALTER TABLE conversations ADD COLUMN model_id TEXT;
ALTER TABLE conversations ADD COLUMN params_json TEXT;

-- Named sets of a model and parameters a person saved, to start a conversation from.
CREATE TABLE presets (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    model_id    TEXT NOT NULL,
    params_json TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    UNIQUE (user_id, name)
);

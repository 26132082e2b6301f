-- Uploaded files (chat attachments and JSON viewer documents) and the files each call was given.

CREATE TABLE files (
    id              TEXT PRIMARY KEY,
    user_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id TEXT REFERENCES conversations (id) ON DELETE CASCADE,
    message_id      TEXT,                         -- set when the file is sent with a message
    purpose         TEXT NOT NULL CHECK (purpose IN ('chat', 'json')),
    name            TEXT NOT NULL,                -- the original name, sanitised; stored on disk under id
    size_bytes      BIGINT NOT NULL,
    sha256          TEXT NOT NULL,
    kind            TEXT NOT NULL,                -- detected from the content: text, markdown, csv, json, code, docx, doc, pdf
    text            TEXT NOT NULL DEFAULT '',     -- extracted text (chat files)
    tokens          BIGINT NOT NULL DEFAULT 0,    -- estimate of the extracted text
    tokens_sent     BIGINT,                       -- of those, how many fit into the message it was sent with
    created_ms      BIGINT NOT NULL
);
CREATE INDEX files_user ON files (user_id, created_ms DESC);
CREATE INDEX files_message ON files (message_id);
CREATE INDEX files_conversation ON files (conversation_id);

-- What the model was given for a user message (attachments expanded); NULL when it is the content itself.
ALTER TABLE messages ADD COLUMN model_content TEXT;

CREATE TABLE call_files (
    call_id      TEXT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    file_id      TEXT NOT NULL,
    name         TEXT NOT NULL,
    tokens_sent  BIGINT NOT NULL,
    tokens_total BIGINT NOT NULL,
    PRIMARY KEY (call_id, file_id)
);

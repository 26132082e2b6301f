-- Storage quota: bytes an upload in progress has reserved (grown as it streams), so that parallel uploads of one
-- person cannot all pass the check and together exceed the quota. A row goes when the upload's file row is
-- written (same transaction) or the upload fails; rows of a process that died are swept after an hour idle.
CREATE TABLE storage_reservations (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    bytes       BIGINT NOT NULL,
    updated_ms  BIGINT NOT NULL
);
CREATE INDEX storage_reservations_user ON storage_reservations (user_id);
-- Bytes of the JSON viewer's own files of a document (index, converted copy), counted in the owner's storage.
ALTER TABLE files ADD COLUMN viewer_bytes BIGINT NOT NULL DEFAULT 0;

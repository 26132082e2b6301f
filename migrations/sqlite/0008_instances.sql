-- Running instances, so that the calls of a process that died (kill -9, power loss) are marked `interrupted` at
-- the next start instead of after the longest provider deadline, and never the calls of a live instance.
-- Each process registers itself at start and refreshes heartbeat_ms every period_ms; `process` identifies it
-- on its machine (Linux: boot id, pid namespace, pid, start time), so an instance on the same machine can tell
-- at once that it is gone. A row whose heartbeat is older than three of its periods is a dead instance.
CREATE TABLE instances (
    id           TEXT PRIMARY KEY,
    started_ms   BIGINT NOT NULL,
    heartbeat_ms BIGINT NOT NULL,
    period_ms    BIGINT NOT NULL,
    process      TEXT NOT NULL DEFAULT ''
);

-- The instance running a call (set while it is pending; NULL on rows written before this migration).
ALTER TABLE calls ADD COLUMN instance_id TEXT;
-- What a reader of the record should know about its data, e.g. characters removed from the provider's output.
ALTER TABLE calls ADD COLUMN notes TEXT;
-- The sweep looks for pending calls on every heartbeat: only a few rows are ever pending.
CREATE INDEX calls_pending ON calls (instance_id) WHERE status = 'pending';

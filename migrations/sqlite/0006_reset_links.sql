-- One live reset link per user: issuing a new link or changing the password revokes the others.
ALTER TABLE password_resets ADD COLUMN revoked_ms BIGINT;

-- Links issued before this migration: keep only each user's newest unused one.
UPDATE password_resets SET revoked_ms = created_ms
WHERE used_ms IS NULL AND EXISTS (
    SELECT 1 FROM password_resets newer
    WHERE newer.user_id = password_resets.user_id AND newer.used_ms IS NULL
      AND (newer.created_ms > password_resets.created_ms
           OR (newer.created_ms = password_resets.created_ms AND newer.id > password_resets.id)));

-- The database itself holds the rule, so two links issued at the same moment cannot both stay live.
CREATE UNIQUE INDEX password_resets_one_live ON password_resets (user_id)
    WHERE used_ms IS NULL AND revoked_ms IS NULL;

-- The history page lists a person's pinned conversations on every load. Without this index the query walked
-- all of the person's conversations (by recency) to find the few pinned ones, and sorted them.
CREATE INDEX conversations_user_pinned ON conversations (user_id, pinned_ms DESC, id DESC)
    WHERE pinned_ms IS NOT NULL;

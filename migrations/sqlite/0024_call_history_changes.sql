-- The analytics store (src/analytics/store.rs) keeps a person's settled calls in memory. Settled records seldom
-- change, but they can disappear (a conversation or an account deleted), arrive late (a record written long
-- after its call was sent) or be completed after the sweep marked them interrupted. Whatever does so counts it
-- here, in the same transaction, so that every
-- instance reloads that person's calls before its next report: from `since_ms` (the oldest call the latest change
-- touched) when it missed only that change, else all of them. No foreign key: the row must outlive a deleted
-- account, whose calls the store still holds until it sees this.
CREATE TABLE call_history_changes (
    user_id    TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    since_ms   BIGINT NOT NULL
);

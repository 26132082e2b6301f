-- The analytics store (src/analytics/store.rs) keeps a person's settled calls in memory. Settled records never
-- change, but they can disappear (a conversation or an account deleted) or arrive late (a record written long
-- after its call was sent). Whatever does either counts it here, in the same transaction, so that every
-- instance reloads that person's calls before its next report. No foreign key: the row must outlive a deleted
-- account, whose calls the store still holds until it sees this.
CREATE TABLE call_history_changes (
    user_id    TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);

-- A conversation put away: out of the sidebar and the history's main list, kept whole, listed under Archived.
ALTER TABLE conversations ADD COLUMN archived_ms BIGINT;

-- Which key sends a chat message: 'enter' (Shift+Enter adds a line) or 'mod-enter' (Ctrl/Cmd+Enter sends,
-- Enter adds a line).
ALTER TABLE users ADD COLUMN send_with TEXT NOT NULL DEFAULT 'enter';

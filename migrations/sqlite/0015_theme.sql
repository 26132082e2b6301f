-- The colour theme a person chose: 'system' (follow the device), 'light' or 'dark'.
ALTER TABLE users ADD COLUMN theme TEXT NOT NULL DEFAULT 'system';

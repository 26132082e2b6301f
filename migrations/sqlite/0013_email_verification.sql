-- When the account's email address was shown to be its owner's (a mailed link followed), or NULL.
ALTER TABLE users ADD COLUMN email_verified_ms BIGINT;

-- Accounts made before verification existed are taken as verified: they signed in and chatted before, and
-- turning verification to mandatory must not lock them out.
UPDATE users SET email_verified_ms = created_ms;

-- Verification links: the SHA-256 of the token (the link itself is only in the mail), the address it
-- verifies (a link for an address the account no longer has verifies nothing), single use, expiring.
CREATE TABLE email_verifications (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    used_ms    BIGINT
);
CREATE INDEX email_verifications_user ON email_verifications (user_id, created_ms DESC);

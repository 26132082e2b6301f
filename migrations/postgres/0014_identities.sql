-- Sign-in with other providers (OpenID Connect, GitHub).

-- An identity is a provider's account: (issuer, subject), for GitHub (its web address, its numeric user id).
-- `provider` is the configured name it was made through (for showing); the email is what the provider said
-- at the last sign-in.
CREATE TABLE identities (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT NOT NULL,
    issuer       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    email        TEXT NOT NULL DEFAULT '',
    created_ms   BIGINT NOT NULL,
    last_used_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX identities_issuer_subject ON identities (issuer, subject);
CREATE INDEX identities_user ON identities (user_id);

-- A sign-in in progress: the SHA-256 of its `state` (the browser holds the state in a cookie too), the PKCE
-- verifier and nonce it must be finished with, where to go afterwards, and the account to link to when it was
-- started from Settings. Taken (deleted) by the callback, so a state works once; expires in minutes.
CREATE TABLE sso_flows (
    id            TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    next          TEXT NOT NULL,
    link_user_id  TEXT REFERENCES users (id) ON DELETE CASCADE,
    created_ms    BIGINT NOT NULL,
    expires_ms    BIGINT NOT NULL
);
CREATE INDEX sso_flows_expires ON sso_flows (expires_ms);

-- A provider's verified email that matched an existing account: linked only once that account's owner has
-- signed in and confirmed (the SHA-256 of the token the browser holds).
CREATE TABLE pending_links (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    issuer     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE INDEX pending_links_expires ON pending_links (expires_ms);

-- Email changes wait for a link followed from the new address: a verification row may carry the address
-- the account is changing to.
ALTER TABLE email_verifications ADD COLUMN new_email TEXT;

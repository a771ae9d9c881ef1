-- Sessions ended by a logout: the cookie's signature (hashed) until the
-- cookie would have expired, so a copy of a logged-out cookie is no login.
CREATE TABLE revoked_sessions (
    token       TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);

-- Server-side revocation of every session of a user (`outpost
-- revoke-sessions --user NAME`): cookies issued before this time are no
-- login. Additive, like every migration (docs/operations.md).
ALTER TABLE users ADD COLUMN sessions_not_before BIGINT NOT NULL DEFAULT 0;

-- When the last URL handed out for a pending asset expires: the sweeper
-- aborts and deletes uploads left pending past it (plus a grace).
ALTER TABLE assets ADD COLUMN url_expires_at BIGINT;

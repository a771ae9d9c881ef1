-- The inbox: writes with any body (JSON, multipart/form-data, binary),
-- kept byte for byte. BYTEA is PostgreSQL's binary type; SQLite stores the
-- bound blob as it is under any declared type.

CREATE TABLE inbox (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    sha256        TEXT NOT NULL,
    body          BYTEA NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX inbox_by_user ON inbox (user_id, id);

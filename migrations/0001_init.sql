-- Portable between SQLite and PostgreSQL: TEXT ids (UUIDs made by the
-- server or the client), BIGINT timestamps in Unix milliseconds.

CREATE TABLE users (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE chat_sessions (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    title       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX chat_sessions_by_user ON chat_sessions (user_id, updated_at);

CREATE TABLE chat_messages (
    id          TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES chat_sessions(id),
    user_id     TEXT NOT NULL REFERENCES users(id),
    role        TEXT NOT NULL,
    content     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX chat_messages_by_session ON chat_messages (session_id, created_at, id);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX projects_by_user ON projects (user_id, updated_at);

CREATE TABLE assets (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users(id),
    project_id    TEXT REFERENCES projects(id),
    filename      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    status        TEXT NOT NULL,
    object_key    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    uploaded_at   BIGINT
);
CREATE INDEX assets_by_user ON assets (user_id, created_at);

-- One row per (user, Idempotency-Key). A row is claimed ('pending', with a
-- lease) before the write runs, and completed with the stored response in
-- the write's own transaction.
CREATE TABLE idempotency_keys (
    user_id       TEXT NOT NULL,
    idem_key      TEXT NOT NULL,
    fingerprint   TEXT NOT NULL,
    state         TEXT NOT NULL,
    lease_until   BIGINT NOT NULL,
    status        INTEGER,
    body          TEXT,
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (user_id, idem_key)
);
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

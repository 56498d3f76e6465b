-- omnitill journal, PostgreSQL schema v1. Append only: never edit a migration that has shipped.
-- Runs inside one transaction with search_path set to the journal's schema.
-- Text keys that are range-scanned or sorted use COLLATE "C": code point order, the same order
-- Python's sorted() and the SQLite store give, whatever the database's default collation.

CREATE TABLE events (
    global_pos BIGINT           PRIMARY KEY,
    stream     TEXT COLLATE "C" NOT NULL,
    version    INTEGER          NOT NULL,
    type       TEXT             NOT NULL,
    data       BYTEA            NOT NULL,
    ts         DOUBLE PRECISION NOT NULL,
    UNIQUE (stream, version)
);

CREATE TABLE streams (
    stream  TEXT COLLATE "C" PRIMARY KEY,
    version INTEGER          NOT NULL
);

CREATE TABLE ops (
    op_id        TEXT             PRIMARY KEY,
    stream       TEXT             NOT NULL,
    payload_hash TEXT             NOT NULL,
    ok           BOOLEAN          NOT NULL,
    result       BYTEA            NOT NULL,
    ts           DOUBLE PRECISION NOT NULL
);

CREATE TABLE timers (
    actor_key TEXT COLLATE "C" NOT NULL,
    timer_id  TEXT COLLATE "C" NOT NULL,
    due_at    DOUBLE PRECISION NOT NULL,
    payload   BYTEA            NOT NULL,
    PRIMARY KEY (actor_key, timer_id)
);
CREATE INDEX timers_due_at ON timers (due_at, actor_key, timer_id);

CREATE TABLE snapshots (
    stream  TEXT    PRIMARY KEY,
    version INTEGER NOT NULL,
    state   BYTEA   NOT NULL
);

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The last global position handed out. Every writer group locks this one row (FOR UPDATE)
-- first, so groups from all nodes commit one at a time, in global_pos order, without gaps:
-- read_all() readers can rely on "no hole = nothing more committed before it".
CREATE TABLE event_counter (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    last_pos BIGINT  NOT NULL
);
INSERT INTO event_counter (id, last_pos) VALUES (TRUE, 0);

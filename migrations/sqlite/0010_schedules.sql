-- Rotation schedules (one row per ring that has left the default: monthly, day 1, 00:00 UTC) and
-- the scheduler's last outcome per ring. Keep in step with migrations/postgres/0010_schedules.sql.

CREATE TABLE schedules (
    ring             TEXT PRIMARY KEY REFERENCES rings (name) ON DELETE CASCADE,
    rule             TEXT NOT NULL,             -- JSON: {"monthly": {"day", "at"}} or {"every_seconds": n}
    paused           INTEGER NOT NULL DEFAULT 0, -- 0 or 1
    failures         INTEGER NOT NULL DEFAULT 0, -- consecutive failed scheduled rotations
    last_error       TEXT,
    last_failure_at  INTEGER,
    retry_at         INTEGER,                    -- backoff: no attempt before this
    last_rotation_at INTEGER,                    -- the last scheduled rotation that started
    updated_at       INTEGER NOT NULL
);

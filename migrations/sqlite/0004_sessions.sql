-- Sessions, in the table (and encoding) tower-sessions' SQLite store used before, so
-- people signed in before this migration stay signed in. `data` is the MessagePack of
-- the session record; `expiry_date` holds sqlx's text form of a UTC timestamp.
CREATE TABLE IF NOT EXISTS tower_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    expiry_date INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS tower_sessions_expiry ON tower_sessions (expiry_date);

-- The event log: every change a live page must see, numbered in commit order (SQLite
-- has one writer, so AUTOINCREMENT ids already ascend in commit order and are never
-- reused after pruning). Rows point at what changed; pages render its current state.
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id BIGINT NOT NULL,
    -- The member an event is about (added, removed, read): they receive it even when
    -- the event removed them from the conversation.
    user_id BIGINT,
    kind TEXT NOT NULL,
    subject_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

-- Presence: the status a user chose, and when their last stream closed.
ALTER TABLE users ADD COLUMN presence TEXT NOT NULL DEFAULT 'online';
ALTER TABLE users ADD COLUMN last_seen_at BIGINT;

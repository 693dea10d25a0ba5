-- The event log: every change a live page must see, numbered in commit order. A
-- sequence would hand out ids in start order, not commit order (a reader could see
-- 101 before 100 commits and skip 100 for ever), so ids come from one counter row
-- bumped inside the writing transaction: its row lock orders the commits.
CREATE TABLE events (
    id BIGINT PRIMARY KEY,
    conversation_id BIGINT NOT NULL,
    user_id BIGINT,
    kind TEXT NOT NULL,
    subject_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_created ON events (created_at);

CREATE TABLE event_counter (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    last_id BIGINT NOT NULL
);
INSERT INTO event_counter (only_row, last_id) VALUES (TRUE, 0);

ALTER TABLE users ADD COLUMN presence TEXT NOT NULL DEFAULT 'online';
ALTER TABLE users ADD COLUMN last_seen_at BIGINT;

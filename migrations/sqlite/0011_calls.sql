-- Calls in DMs and groups (issue 13). A call's room in the SFU is its conversation's
-- id; this row is the call's history: who started it, whether as video, when someone
-- else first joined (answered_at, epoch ms), when it ended and how: outcome is
-- 'answered' | 'declined' | 'missed' (nobody answered in time) | 'cancelled' (the
-- caller hung up first), NULL while it goes on.
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    started_by BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    video BOOLEAN NOT NULL DEFAULT FALSE,
    started_at BIGINT NOT NULL,
    answered_at BIGINT,
    ended_at BIGINT,
    outcome TEXT
);
-- One ongoing call per conversation: a second start meets this index and joins the
-- first instead (two people pressing "Start call" at once make one call).
CREATE UNIQUE INDEX calls_ongoing ON calls (conversation_id) WHERE ended_at IS NULL;
CREATE INDEX calls_conversation ON calls (conversation_id, started_at);

-- Each person's answer to a call that rang for them: 'joined' or 'declined'. Either
-- stops the ringing on all their devices.
CREATE TABLE call_answers (
    call_id BIGINT NOT NULL REFERENCES calls (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    answer TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (call_id, user_id)
);

-- Profiles (bio, pronouns, a custom status with an expiry), privacy choices, blocks
-- and message requests. Status expiry is NULL for "never"; an expired status is
-- simply not shown (checked when rendering), so nothing sweeps it.
ALTER TABLE users ADD COLUMN bio TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN pronouns TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN status_emoji TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN status_text TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN status_expires_at BIGINT;
-- Audiences: 'everyone' | 'shared' (people I share a conversation or server with) | 'nobody'.
ALTER TABLE users ADD COLUMN last_seen_audience TEXT NOT NULL DEFAULT 'everyone';
ALTER TABLE users ADD COLUMN dm_audience TEXT NOT NULL DEFAULT 'everyone';
ALTER TABLE users ADD COLUMN group_audience TEXT NOT NULL DEFAULT 'everyone';

CREATE TABLE blocks (
    blocker_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);

-- A DM started by someone outside the recipient's circle: the sender is a member of
-- the conversation, the recipient is not (so nothing of it reaches their sidebar or
-- stream) until they accept.
CREATE TABLE message_requests (
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    from_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);
CREATE INDEX message_requests_conversation ON message_requests (conversation_id);

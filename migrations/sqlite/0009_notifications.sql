-- Notification levels and Web Push.
--
-- A person's level for one conversation (DM, group or server channel) and for a whole
-- server: 'all' | 'mentions' | 'nothing'; NULL level means "as the default" (a
-- channel takes its server's, DMs and groups take 'all'). muted_until is epoch ms
-- (NULL: not muted; a far-future value: until turned back on). A row exists only once
-- someone changed something, so the sidebar's LEFT JOIN on the key stays cheap.
CREATE TABLE notification_settings (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    level TEXT,
    muted_until BIGINT,
    PRIMARY KEY (user_id, conversation_id)
);

CREATE TABLE server_notification_settings (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    level TEXT,
    muted_until BIGINT,
    PRIMARY KEY (user_id, server_id)
);

-- The server's VAPID key pair (RFC 8292), made at first start: exactly one row.
CREATE TABLE vapid_keys (
    id BIGINT PRIMARY KEY,
    private_key TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A browser's PushSubscription, tied to the signed-in device that registered it:
-- signing that device out removes it. An endpoint is one browser profile's, so it is
-- unique; registering it again moves it to the registering device.
CREATE TABLE push_subscriptions (
    id INTEGER PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    device_id BIGINT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_endpoint ON push_subscriptions (endpoint);
CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);
CREATE INDEX push_subscriptions_device ON push_subscriptions (device_id);

-- "This person has this conversation open in a visible tab", until expires_at (epoch
-- ms). Kept fresh by the page's heartbeat; in the database so every instance sees it.
CREATE TABLE push_focus (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, conversation_id)
);

-- Servers (Discord's "guilds"): members, roles with a permission bitfield, categories,
-- channels (conversations with server_id set), per-channel and per-category overrides,
-- invites, bans and the audit log. Permission bits are `servers::permissions`; their
-- positions are stored here, so they never move.
CREATE TABLE servers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    owner_id BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    -- Bumped by every change to roles, channels, categories or overrides, so instances
    -- can keep the server's shape in memory and notice when it moved.
    version BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE server_members (
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at BIGINT NOT NULL,
    -- A timeout in force until this time (epoch ms): read only, no sending or reacting.
    timeout_until BIGINT,
    PRIMARY KEY (server_id, user_id)
);
CREATE INDEX server_members_user ON server_members (user_id);

-- Position 0 is @everyone (one per server); higher positions outrank lower ones.
CREATE TABLE roles (
    id INTEGER PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    color TEXT NOT NULL DEFAULT '',
    permissions BIGINT NOT NULL DEFAULT 0,
    position BIGINT NOT NULL,
    hoist BOOLEAN NOT NULL DEFAULT FALSE,
    mentionable BOOLEAN NOT NULL DEFAULT FALSE,
    is_everyone BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX roles_server ON roles (server_id, position);

CREATE TABLE member_roles (
    server_id BIGINT NOT NULL,
    user_id BIGINT NOT NULL,
    role_id BIGINT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    PRIMARY KEY (server_id, user_id, role_id),
    FOREIGN KEY (server_id, user_id) REFERENCES server_members (server_id, user_id) ON DELETE CASCADE
);

CREATE TABLE categories (
    id INTEGER PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    position BIGINT NOT NULL
);
CREATE INDEX categories_server ON categories (server_id, position);

-- Channels are conversations: kind 'text' | 'voice', server_id and category_id set.
ALTER TABLE conversations ADD COLUMN position BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN topic TEXT NOT NULL DEFAULT '';
ALTER TABLE conversations ADD COLUMN slowmode_seconds BIGINT NOT NULL DEFAULT 0;
-- Synced channels take their category's overrides instead of their own.
ALTER TABLE conversations ADD COLUMN synced BOOLEAN NOT NULL DEFAULT TRUE;
CREATE INDEX conversations_server ON conversations (server_id, position) WHERE server_id IS NOT NULL;

-- Allow / deny bits for a role or one member on a channel or a category.
CREATE TABLE overrides (
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    target_kind TEXT NOT NULL,
    target_id BIGINT NOT NULL,
    subject_kind TEXT NOT NULL,
    subject_id BIGINT NOT NULL,
    allow_bits BIGINT NOT NULL DEFAULT 0,
    deny_bits BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (target_kind, target_id, subject_kind, subject_id)
);
CREATE INDEX overrides_server ON overrides (server_id);

CREATE TABLE invites (
    code TEXT PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    creator_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    max_uses BIGINT NOT NULL DEFAULT 0,
    uses BIGINT NOT NULL DEFAULT 0,
    revoked_at BIGINT
);
CREATE INDEX invites_server ON invites (server_id, created_at);

CREATE TABLE bans (
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    actor_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    reason TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    PRIMARY KEY (server_id, user_id)
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    server_id BIGINT NOT NULL REFERENCES servers (id) ON DELETE CASCADE,
    actor_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action TEXT NOT NULL,
    target_kind TEXT NOT NULL DEFAULT '',
    target_id BIGINT,
    target_name TEXT NOT NULL DEFAULT '',
    before_text TEXT NOT NULL DEFAULT '',
    after_text TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);
CREATE INDEX audit_log_server ON audit_log (server_id, id);

-- Slowmode asks when a member last wrote in a channel; bans delete a member's recent
-- messages.
CREATE INDEX messages_author ON messages (conversation_id, author_id, created_at);

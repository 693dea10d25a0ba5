-- Files attached to messages. An upload is stored first (message_id NULL, seen only by
-- its uploader's send) and attached when the message is written, in the same
-- transaction. No foreign keys to conversations or messages on purpose: deleting those
-- must leave the row, so the sweep (files/sweep.rs) can still find and remove the
-- stored objects it names.
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    uploader_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    conversation_id BIGINT NOT NULL,
    message_id BIGINT,
    position INTEGER NOT NULL DEFAULT 0,
    name TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    thumb_key TEXT,
    width INTEGER,
    height INTEGER,
    created_at BIGINT NOT NULL
);
CREATE INDEX attachments_message ON attachments (message_id);

-- Avatars and server icons: the object key of the current square picture (NULL: none,
-- initials are shown). A new upload gets a new key, so a key is also its version.
ALTER TABLE users ADD COLUMN avatar_key TEXT;
ALTER TABLE servers ADD COLUMN icon_key TEXT;

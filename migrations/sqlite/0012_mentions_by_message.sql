-- A page's mentions are looked up by message (and editing or deleting a message
-- removes its mentions by message): without this, each was a scan of every mention.
CREATE INDEX mentions_message ON mentions (message_id);

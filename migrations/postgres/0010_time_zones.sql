-- Each person's time zone, an IANA name ("Asia/Tokyo"); '' until chosen, shown as UTC.
-- (The browser's zone is offered once by app.js while it is ''.)
ALTER TABLE users ADD COLUMN time_zone TEXT NOT NULL DEFAULT '';

-- What each user chose to show: online (the default), idle, dnd or invisible, and an
-- optional custom status. Who is connected lives in memory or Redis, not here.
CREATE TABLE presence_prefs (
    user_id       BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    status        TEXT   NOT NULL,
    custom_status TEXT
);

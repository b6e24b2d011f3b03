-- A moderator's server-mute of a guild member (1), in every voice channel of the guild
-- until lifted.
ALTER TABLE members ADD COLUMN server_mute BIGINT NOT NULL DEFAULT 0;

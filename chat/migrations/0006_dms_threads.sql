-- DMs and group DMs (channels without a guild, with recipients), and threads (channels
-- of kind thread under a text channel, started from a message).
CREATE TABLE dm_recipients (
    channel_id BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    added_at   BIGINT NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX dm_recipients_user ON dm_recipients(user_id);

-- Group DM owner, thread creator.
ALTER TABLE channels ADD COLUMN owner_id BIGINT;
ALTER TABLE channels ADD COLUMN starter_message_id BIGINT;
ALTER TABLE channels ADD COLUMN archived BIGINT NOT NULL DEFAULT 0;
-- One DM per pair: "low:high" user ids.
ALTER TABLE channels ADD COLUMN dm_key TEXT;
CREATE UNIQUE INDEX channels_dm_key ON channels(dm_key);
CREATE UNIQUE INDEX channels_thread_starter ON channels(starter_message_id);

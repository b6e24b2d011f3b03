-- Bans, invite limits, reactions, pins and mentions.
CREATE TABLE bans (
    guild_id   BIGINT NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason     TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);

-- NULL: never expires / unlimited.
ALTER TABLE invites ADD COLUMN expires_at BIGINT;
ALTER TABLE invites ADD COLUMN max_uses BIGINT;

CREATE TABLE reactions (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    emoji      TEXT   NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

ALTER TABLE messages ADD COLUMN pinned_at BIGINT;
ALTER TABLE messages ADD COLUMN mention_everyone BIGINT NOT NULL DEFAULT 0;
CREATE INDEX messages_pins ON messages(channel_id, pinned_at);

-- Parsed mentions: kind is user, role or channel.
CREATE TABLE mentions (
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    kind       TEXT   NOT NULL,
    target_id  BIGINT NOT NULL,
    PRIMARY KEY (message_id, kind, target_id)
);
CREATE INDEX mentions_target ON mentions(kind, target_id);

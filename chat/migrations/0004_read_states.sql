-- Read states, notification settings and the inbox.
-- Counts are computed from messages after last_read_id; with no row, everything before
-- the member joined counts as read.
CREATE TABLE read_states (
    user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel_id   BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    last_read_id BIGINT NOT NULL,
    PRIMARY KEY (user_id, channel_id)
);
CREATE INDEX read_states_channel ON read_states(channel_id);

-- scope_kind: guild or channel. level: all, mentions or nothing (NULL: inherit).
-- muted_until: ms since the epoch; 9223372036854775807 until turned back on.
CREATE TABLE notification_settings (
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    scope_kind    TEXT   NOT NULL,
    scope_id      BIGINT NOT NULL,
    level         TEXT,
    muted_until   BIGINT,
    keep_mentions BIGINT NOT NULL DEFAULT 1,
    PRIMARY KEY (user_id, scope_kind, scope_id)
);

-- reason: mention or reply.
CREATE TABLE inbox (
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message_id BIGINT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    channel_id BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    read_at    BIGINT,
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX inbox_user ON inbox(user_id, message_id);

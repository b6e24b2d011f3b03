-- Search over folded (lowercased) text, and attachments.
ALTER TABLE messages ADD COLUMN search_text TEXT;
UPDATE messages SET search_text = LOWER(content);

CREATE TABLE attachments (
    id           BIGINT PRIMARY KEY,
    uploader_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel_id   BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    -- Set when a message claims the upload.
    message_id   BIGINT REFERENCES messages(id) ON DELETE CASCADE,
    filename     TEXT   NOT NULL,
    content_type TEXT   NOT NULL,
    size         BIGINT NOT NULL,
    width        BIGINT,
    height       BIGINT,
    has_thumb    BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL
);
CREATE INDEX attachments_message ON attachments(message_id);

-- Friends, friend requests and blocks, as each user sees them: `friend` (both rows),
-- `outgoing` / `incoming` (a request, one row each side), `blocked` (the blocker's row
-- only; the blocked user sees nothing).
CREATE TABLE relationships (
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    other_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, other_id)
);
CREATE INDEX relationships_other ON relationships (other_id);

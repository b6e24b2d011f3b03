-- Guilds with their roles, members, channels (with permission overwrites), messages and
-- invites. The @everyone role's id is the guild's id.
CREATE TABLE guilds (
    id         BIGINT PRIMARY KEY,
    name       TEXT   NOT NULL,
    owner_id   BIGINT NOT NULL REFERENCES users(id),
    created_at BIGINT NOT NULL
);

CREATE TABLE roles (
    id          BIGINT PRIMARY KEY,
    guild_id    BIGINT NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    name        TEXT   NOT NULL,
    permissions BIGINT NOT NULL,
    position    BIGINT NOT NULL
);
CREATE INDEX roles_guild ON roles(guild_id);

CREATE TABLE members (
    guild_id  BIGINT NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (guild_id, user_id)
);
CREATE INDEX members_user ON members(user_id);

CREATE TABLE member_roles (
    guild_id BIGINT NOT NULL,
    user_id  BIGINT NOT NULL,
    role_id  BIGINT NOT NULL REFERENCES roles(id) ON DELETE CASCADE,
    PRIMARY KEY (guild_id, user_id, role_id),
    FOREIGN KEY (guild_id, user_id) REFERENCES members(guild_id, user_id) ON DELETE CASCADE
);

-- DM and group DM channels have no guild.
CREATE TABLE channels (
    id         BIGINT PRIMARY KEY,
    guild_id   BIGINT REFERENCES guilds(id) ON DELETE CASCADE,
    kind       TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    parent_id  BIGINT,
    position   BIGINT NOT NULL,
    user_limit BIGINT
);
CREATE INDEX channels_guild ON channels(guild_id);

CREATE TABLE overwrites (
    channel_id  BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    target_kind TEXT   NOT NULL,
    target_id   BIGINT NOT NULL,
    allow_bits  BIGINT NOT NULL,
    deny_bits   BIGINT NOT NULL,
    PRIMARY KEY (channel_id, target_kind, target_id)
);

CREATE TABLE messages (
    id         BIGINT PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    author_id  BIGINT NOT NULL REFERENCES users(id),
    content    TEXT   NOT NULL,
    reply_to   BIGINT,
    edited_at  BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX messages_channel ON messages(channel_id, id);

CREATE TABLE invites (
    code       TEXT   PRIMARY KEY,
    guild_id   BIGINT NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    creator_id BIGINT NOT NULL REFERENCES users(id),
    uses       BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

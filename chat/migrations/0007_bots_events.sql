-- Bots (applications with a bot user and token), slash commands and their
-- interactions, incoming webhooks, scheduled events, and words excluded from insights.
CREATE TABLE applications (
    id               BIGINT PRIMARY KEY,
    owner_id         BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    bot_user_id      BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name             TEXT   NOT NULL,
    token_hash       TEXT   NOT NULL UNIQUE,
    -- Signs outgoing webhook deliveries.
    webhook_secret   TEXT   NOT NULL,
    interactions_url TEXT,
    created_at       BIGINT NOT NULL
);
CREATE INDEX applications_bot ON applications(bot_user_id);

CREATE TABLE commands (
    id             BIGINT PRIMARY KEY,
    application_id BIGINT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    name           TEXT   NOT NULL,
    description    TEXT   NOT NULL,
    options        TEXT   NOT NULL,
    UNIQUE (application_id, name)
);

CREATE TABLE interactions (
    id             BIGINT PRIMARY KEY,
    application_id BIGINT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    channel_id     BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    user_id        BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    command        TEXT   NOT NULL,
    token_hash     TEXT   NOT NULL,
    replied        BIGINT NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL
);

CREATE TABLE webhooks (
    id         BIGINT PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    creator_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- The account its messages are posted as.
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    token_hash TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX webhooks_channel ON webhooks(channel_id);

CREATE TABLE scheduled_events (
    id          BIGINT PRIMARY KEY,
    guild_id    BIGINT NOT NULL REFERENCES guilds(id) ON DELETE CASCADE,
    creator_id  BIGINT NOT NULL REFERENCES users(id),
    title       TEXT   NOT NULL,
    description TEXT   NOT NULL,
    start_at    BIGINT NOT NULL,
    end_at      BIGINT,
    channel_id  BIGINT REFERENCES channels(id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX scheduled_events_guild ON scheduled_events(guild_id, start_at);

CREATE TABLE event_interests (
    event_id BIGINT NOT NULL REFERENCES scheduled_events(id) ON DELETE CASCADE,
    user_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (event_id, user_id)
);

CREATE TABLE insight_exclusions (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    word    TEXT   NOT NULL,
    PRIMARY KEY (user_id, word)
);

-- Accounts, sessions (refresh tokens) and the login IP allowlist.
CREATE TABLE users (
    id            BIGINT  PRIMARY KEY,
    username      TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    avatar        TEXT,
    is_bot        BOOLEAN NOT NULL DEFAULT FALSE,
    login_allowlist TEXT  NOT NULL DEFAULT '[]',
    created_at    BIGINT  NOT NULL
);
CREATE UNIQUE INDEX users_username ON users (lower(username));

CREATE TABLE refresh_tokens (
    token_hash  TEXT    PRIMARY KEY,
    user_id     BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family      TEXT    NOT NULL,
    expires_at  BIGINT  NOT NULL,
    used        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);

CREATE TABLE login_refusals (
    id         BIGSERIAL PRIMARY KEY,
    user_id    BIGINT  NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ip         TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    at         BIGINT  NOT NULL
);

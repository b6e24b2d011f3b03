-- The e-mail address of an account (for password resets and sign-in links), and the
-- password-reset codes sent to it. Codes are stored hashed and used once.
CREATE TABLE user_emails (
    user_id     BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    email       TEXT   NOT NULL,
    verified_at BIGINT
);
CREATE UNIQUE INDEX user_emails_email ON user_emails (lower(email));

CREATE TABLE password_resets (
    code_hash  TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- Sign-in with OpenID Connect providers: which provider account (issuer and subject) is
-- which Parlor account; sign-ins under way (by the hash of their `state`, with the nonce
-- and the PKCE verifier); and the one-time tickets that hand a finished sign-in to the
-- page, through a cookie, never the URL.
CREATE TABLE oidc_links (
    issuer     TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX oidc_links_user ON oidc_links (user_id);

CREATE TABLE oidc_flows (
    state_hash TEXT   PRIMARY KEY,
    provider   TEXT   NOT NULL,
    nonce      TEXT   NOT NULL,
    verifier   TEXT   NOT NULL,
    expires_at BIGINT NOT NULL
);

-- `user_id`: signed in; else the provider account waits to be linked (to `link_user`, the
-- account that has its verified address, once its owner confirms) or to get an account.
CREATE TABLE oidc_tickets (
    ticket_hash  TEXT   PRIMARY KEY,
    user_id      BIGINT,
    issuer       TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    provider     TEXT   NOT NULL,
    email        TEXT,
    name         TEXT,
    username     TEXT,
    link_user    BIGINT,
    expires_at   BIGINT NOT NULL
);

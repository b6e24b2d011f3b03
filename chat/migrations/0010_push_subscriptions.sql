-- Web Push subscriptions (RFC 8030): one per browser, which belongs to whoever signed in
-- there last. `p256dh` and `auth` are the subscription's keys, base64url as browsers give
-- them.
CREATE TABLE push_subscriptions (
    endpoint   TEXT   PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    p256dh     TEXT   NOT NULL,
    auth       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);

-- Sessions that ended (logout, password change, a replayed refresh token) while access
-- tokens issued in them may still be unexpired. Every node loads the live rows at start,
-- so an ended session stays ended across restarts; rows are dropped once they expire.
CREATE TABLE ended_sessions (
    session_id  TEXT   PRIMARY KEY,
    user_id     BIGINT NOT NULL,
    -- Until when an access token of the session could still pass its own expiry check.
    expires_at  BIGINT NOT NULL
);
CREATE INDEX ended_sessions_expires ON ended_sessions(expires_at);

-- A trigram index over the folded text of messages, for substring search: pg_trgm's GIN
-- operator class serves LIKE '%term%' (a trusted extension since PostgreSQL 13: the
-- database's owner may create it).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX IF NOT EXISTS messages_search_trgm ON messages USING gin (search_text gin_trgm_ops);

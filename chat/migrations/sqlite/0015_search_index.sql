-- A trigram index over the folded text of messages, for substring search (FTS5's trigram
-- tokenizer: every run of three characters, so Korean, Japanese and Chinese are found
-- exactly as other text). It holds no copy of the text (external content: messages.id
-- and messages.search_text); triggers keep it in step with every insert, edit and delete.
CREATE VIRTUAL TABLE message_search USING fts5(
    search_text,
    content = 'messages',
    content_rowid = 'id',
    tokenize = 'trigram'
);

CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN
    INSERT INTO message_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN
    INSERT INTO message_search (message_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
END;

CREATE TRIGGER message_search_update AFTER UPDATE OF search_text ON messages BEGIN
    INSERT INTO message_search (message_search, rowid, search_text)
        VALUES ('delete', old.id, old.search_text);
    INSERT INTO message_search (rowid, search_text) VALUES (new.id, new.search_text);
END;

INSERT INTO message_search (message_search) VALUES ('rebuild');

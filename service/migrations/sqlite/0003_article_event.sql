-- WatchArticles: every change to an article, in commit order.
--
-- Triggers write the event in the transaction of the write itself, so an event exists exactly
-- when its write committed (a failed or rolled back write leaves none), whichever process or
-- tool wrote it. AUTOINCREMENT: an id is never reused, even after the newest event is deleted,
-- so a watcher resuming from an id never misses a later event that took it. `kind` is
-- article.v1.ArticleEvent.Kind: 1 created, 2 updated, 3 deleted; a deletion keeps the deleted
-- row. Only databases whose schema is ours get this; a Django database is served as it is.
CREATE TABLE article_event (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
    article_id INTEGER NOT NULL,
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    create_time TEXT NOT NULL
);

CREATE TRIGGER article_event_insert AFTER INSERT ON article_article
BEGIN
    INSERT INTO article_event (kind, article_id, title, content, create_time)
    VALUES (1, NEW.id, NEW.title, NEW.content, NEW.create_time);
END;

CREATE TRIGGER article_event_update AFTER UPDATE ON article_article
BEGIN
    INSERT INTO article_event (kind, article_id, title, content, create_time)
    VALUES (2, NEW.id, NEW.title, NEW.content, NEW.create_time);
END;

CREATE TRIGGER article_event_delete AFTER DELETE ON article_article
BEGIN
    INSERT INTO article_event (kind, article_id, title, content, create_time)
    VALUES (3, OLD.id, OLD.title, OLD.content, OLD.create_time);
END;

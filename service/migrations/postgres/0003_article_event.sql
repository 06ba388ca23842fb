-- WatchArticles: every change to an article.
--
-- A trigger writes the event in the transaction of the write itself, so an event exists
-- exactly when its write committed (a failed or rolled back write leaves none), whichever
-- replica or tool wrote it, and `pg_notify` (delivered at commit, dropped at rollback) wakes
-- the watchers of every replica listening on `article_event`. `kind` is
-- article.v1.ArticleEvent.Kind: 1 created, 2 updated, 3 deleted; a deletion keeps the deleted
-- row. Only databases whose schema is ours get this; a Django database is served as it is.
--
-- Ids come from a sequence, so they are unique and increasing in the order they are taken,
-- which is not quite commit order: a transaction that took id 7 may commit after one that
-- took id 8. The table lock below makes writers of events take ids in commit order (each
-- write holds it until it commits), so a watcher that has seen id 8 never has 7 still to come.
CREATE TABLE article_event (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind smallint NOT NULL CHECK (kind IN (1, 2, 3)),
    article_id bigint NOT NULL,
    title text NOT NULL,
    content text NOT NULL,
    create_time timestamp with time zone NOT NULL
);

CREATE FUNCTION article_event_record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    row_ record;
    kind_ smallint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        row_ := OLD;
        kind_ := 3;
    ELSE
        row_ := NEW;
        kind_ := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE 2 END;
    END IF;
    -- Serializes the writers of events until they commit (see above); readers are not blocked.
    LOCK TABLE article_event IN SHARE ROW EXCLUSIVE MODE;
    INSERT INTO article_event (kind, article_id, title, content, create_time)
    VALUES (kind_, row_.id, row_.title, row_.content, row_.create_time);
    PERFORM pg_notify('article_event', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER article_event_record AFTER INSERT OR UPDATE OR DELETE ON article_article
    FOR EACH ROW EXECUTE FUNCTION article_event_record();

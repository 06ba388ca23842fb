-- ArticleList without scanning the table.
--
-- `total` comes from a one-row counter kept by triggers: count(*) reads every page of the
-- table (about 200 ms at a million articles). And a narrow index on `id` lets OFFSET step
-- over ~10-byte index entries instead of whole rows (page 5,000 in under a millisecond).
-- Only databases whose schema is ours get these; a Django database is served as it is.
CREATE TABLE article_stats (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    total INTEGER NOT NULL
);
INSERT INTO article_stats (id, total) SELECT 1, count(*) FROM article_article;

CREATE TRIGGER article_stats_insert AFTER INSERT ON article_article
BEGIN
    UPDATE article_stats SET total = total + 1 WHERE id = 1;
END;

CREATE TRIGGER article_stats_delete AFTER DELETE ON article_article
BEGIN
    UPDATE article_stats SET total = total - 1 WHERE id = 1;
END;

CREATE INDEX article_article_id_narrow ON article_article (id);

-- The table Django creates for `Article(title=CharField(max_length=200), content=TextField(),
-- create_time=DateTimeField(auto_now_add=True))` with a BigAutoField id, on SQLite.
CREATE TABLE "article_article" (
    "id" integer NOT NULL PRIMARY KEY AUTOINCREMENT,
    "title" varchar(200) NOT NULL,
    "content" text NOT NULL,
    "create_time" datetime NOT NULL
);

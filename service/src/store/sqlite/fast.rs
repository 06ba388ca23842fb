//! The fast path of the two hot reads on SQLite (a page of ArticleList, one ArticleDetail).
//!
//! Why it exists: sqlx-sqlite runs every connection on a worker thread of its own and hands each
//! command and each row across channels, so one short query costs several thread wake-ups. Under
//! ArticleList load those hand-offs, not SQLite, were most of the service's CPU (README,
//! Performance). Here a short read runs on the calling thread through rusqlite, on read-only
//! connections kept in a small idle list, with their prepared statements cached.
//!
//! It answers only when it can answer at once, and never differently from the pool: its
//! connections are read-only and have no busy timeout, so a file locked by a writer (a
//! rollback-journal database such as Django's) makes it give up immediately. On any failure the
//! caller asks the sqlx pool instead, which waits for locks off the async threads and reports
//! errors as usual. Long reads (deep offsets, counting a foreign table) are never sent here:
//! they would hold an async worker thread.

use std::{
    path::PathBuf,
    sync::{Mutex, PoisonError},
};

use rusqlite::{Connection, OpenFlags};

use crate::{
    clock,
    model::Article,
    store::page::{PageRow, page_from_rows},
};

/// What `strftime` makes of a `create_time` that [`clock::sqlite_canonical_len`] cannot cut:
/// the value itself when SQLite cannot read it as a time either. Here, as both this reader and
/// the sqlx path send it.
pub(super) const FORMAT_TIME: &str = "SELECT COALESCE(strftime('%Y-%m-%d %H:%M:%S', ?1), ?1)";

/// `sqlite::format_time` on this connection.
fn format_time(conn: &Connection, article: &mut Article) -> rusqlite::Result<()> {
    if let Some(len) = clock::sqlite_canonical_len(&article.create_time) {
        article.create_time.truncate(len);
    } else {
        article.create_time = conn
            .prepare_cached(FORMAT_TIME)?
            .query_row([&article.create_time], |row| row.get(0))?;
    }
    Ok(())
}

/// Read-only connections to one SQLite file.
#[derive(Debug)]
pub(super) struct FastReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    max_idle: usize,
}

impl FastReader {
    /// A reader of the file at `path`; no connection is opened yet.
    pub(super) fn new(path: PathBuf, max_idle: usize) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
        }
    }

    /// A page and the total, by the page query `page_sql` (see `sqlite::page_query!`) and, for
    /// an empty page, the count query `total_sql`; `None` when the pool must answer instead.
    pub(super) fn list(
        &self,
        page_sql: &str,
        total_sql: &str,
        limit: i64,
        offset: i64,
    ) -> Option<(Vec<Article>, i64)> {
        self.with_connection(|conn| {
            let rows = conn
                .prepare_cached(page_sql)?
                .query_map((limit, offset), |row| -> rusqlite::Result<PageRow> {
                    Ok((
                        row.get(0)?,
                        row.get(1)?,
                        row.get(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            if rows.is_empty() {
                let total = conn
                    .prepare_cached(total_sql)?
                    .query_row([], |row| row.get(0))?;
                return Ok((Vec::new(), total));
            }
            let (mut page, total) = page_from_rows(rows);
            for article in &mut page {
                format_time(conn, article)?;
            }
            Ok((page, total))
        })
    }

    /// The article with id `id` by the detail query `sql` (`Some(None)` when there is none),
    /// or `None` when the pool must answer instead.
    pub(super) fn get(&self, sql: &str, id: i64) -> Option<Option<Article>> {
        self.with_connection(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            let mut rows = statement.query([id])?;
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            let mut article = Article {
                id: row.get(0)?,
                title: row.get(1)?,
                content: row.get(2)?,
                create_time: row.get(3)?,
            };
            format_time(conn, &mut article)?;
            Ok(Some(article))
        })
    }

    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Option<T> {
        let popped = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let result = match popped {
            Some(conn) => Ok(conn),
            None => self.open(),
        }
        .and_then(|conn| read(&conn).map(|value| (conn, value)));
        match result {
            Ok((conn, value)) => {
                let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
                if idle.len() < self.max_idle {
                    idle.push(conn);
                }
                Some(value)
            }
            // The connection is dropped: a busy file, a missing table or a broken handle all
            // leave the answer to the pool, and the next read opens a new connection.
            Err(error) => {
                tracing::debug!(%error, "fast SQLite read gave way to the pool");
                None
            }
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // Read-only and without creating: the pool owns the file's life. NO_MUTEX: a connection
        // is used by one thread at a time (it is out of the idle list while in use).
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // rusqlite waits 5 s for a lock by default; this path must never wait.
        conn.busy_timeout(std::time::Duration::ZERO)?;
        Ok(conn)
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::store::sqlite::{DETAIL, PAGE_WITH_STATS, TOTAL_WITH_STATS};

    /// A database file with our schema's two tables and `n` articles.
    fn database(dir: &tempfile::TempDir, n: i64) -> PathBuf {
        let path = dir.path().join("articles.db");
        let conn = Connection::open(&path).expect("create");
        conn.execute_batch(
            "CREATE TABLE article_article (id INTEGER PRIMARY KEY, title TEXT NOT NULL, \
             content TEXT NOT NULL, create_time DATETIME NOT NULL); \
             CREATE TABLE article_stats (id INTEGER PRIMARY KEY, total INTEGER NOT NULL);",
        )
        .expect("schema");
        for i in 1..=n {
            conn.execute(
                "INSERT INTO article_article (title, content, create_time) \
                 VALUES (?1, 'body', '2024-05-06 07:08:09.123456')",
                [format!("title {i}")],
            )
            .expect("insert");
        }
        conn.execute("INSERT INTO article_stats VALUES (1, ?1)", [n])
            .expect("stats");
        path
    }

    #[test]
    fn reads_pages_details_and_the_total_of_an_empty_page() {
        let dir = tempfile::tempdir().expect("tempdir");
        let reader = FastReader::new(database(&dir, 5), 2);
        let (page, total) = reader
            .list(PAGE_WITH_STATS, TOTAL_WITH_STATS, 2, 2)
            .expect("fast page");
        assert_eq!(total, 5);
        assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(page[0].create_time, "2024-05-06 07:08:09");
        assert_eq!(
            reader.list(PAGE_WITH_STATS, TOTAL_WITH_STATS, 2, 10),
            Some((Vec::new(), 5))
        );
        let found = reader.get(DETAIL, 5).expect("fast detail");
        assert_eq!(found.map(|a| a.title), Some("title 5".to_owned()));
        assert_eq!(reader.get(DETAIL, 6), Some(None));
    }

    #[test]
    fn times_come_out_exactly_as_strftime_formats_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = database(&dir, 0);
        let conn = Connection::open(&path).expect("open");
        let times = [
            "2024-05-06 07:08:09",
            "2024-05-06 07:08:09.123456",
            "2024-05-06 07:08:59.999300",
            "2024-05-06 07:08:59.99939",
            "2024-05-06 07:08:59.99949",
            "2024-05-06 07:08:59.9995",
            "2024-12-31 23:59:59.999700",
            "2024-02-29 12:00:00",
            "2023-02-29 10:00:00",
            "2024-05-06T07:08:09",
            "2024-05-06 07:08:09+02:00",
            "2024-05-06 07:08",
            "2460000.5",
            "not a time",
        ];
        for time in times {
            conn.execute(
                "INSERT INTO article_article (title, content, create_time) VALUES ('t', 'c', ?1)",
                [time],
            )
            .expect("insert");
        }
        conn.execute("UPDATE article_stats SET total = 14", [])
            .expect("stats");
        let want: Vec<String> = conn
            .prepare(
                "SELECT COALESCE(strftime('%Y-%m-%d %H:%M:%S', create_time), create_time) \
                 FROM article_article ORDER BY id",
            )
            .expect("prepare")
            .query_map([], |row| row.get(0))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        let reader = FastReader::new(path, 1);
        let (page, _) = reader
            .list(PAGE_WITH_STATS, TOTAL_WITH_STATS, 100, 0)
            .expect("fast page");
        let got: Vec<String> = page.into_iter().map(|a| a.create_time).collect();
        assert_eq!(got, want);
        let detail = reader.get(DETAIL, 11).expect("fast detail");
        assert_eq!(detail.map(|a| a.create_time), Some(want[10].clone()));
    }

    #[test]
    fn gives_way_at_once_to_a_writer_holding_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = database(&dir, 1);
        let reader = FastReader::new(path.clone(), 2);
        // Rollback journal (the default, and Django's): an exclusive lock shuts readers out.
        let writer = Connection::open(&path).expect("writer");
        writer.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        let start = Instant::now();
        assert_eq!(reader.get(DETAIL, 1), None, "must leave it to the pool");
        // A behaviour bound, not a benchmark: giving way must not wait out a busy timeout.
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
        writer.execute_batch("COMMIT").expect("unlock");
        assert!(reader.get(DETAIL, 1).expect("after the lock").is_some());
    }

    #[test]
    fn never_creates_a_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("missing.db");
        let reader = FastReader::new(path.clone(), 2);
        assert_eq!(reader.get(DETAIL, 1), None);
        assert!(!path.exists());
    }
}

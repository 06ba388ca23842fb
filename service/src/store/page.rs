//! The rows of a page query (the total on every row, then the article's columns) and the page
//! they make: the one shape both backends' page queries return.

use crate::model::Article;

/// A row of a page query: the total, then the article's columns (all NULL on the one row of
/// an empty page).
pub(super) type PageRow = (
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Turns the rows of a page query (total, then the article's columns, all NULL on the one row
/// of an empty page) into the page and the total.
pub(super) fn page_from_rows(rows: Vec<PageRow>) -> (Vec<Article>, i64) {
    let total = rows.first().map_or(0, |row| row.0);
    let articles = rows
        .into_iter()
        .filter_map(|(_, id, title, content, create_time)| {
            Some(Article {
                id: id?,
                title: title?,
                content: content?,
                create_time: create_time?,
            })
        })
        .collect();
    (articles, total)
}

//! Following a paged answer (WIT 0.2.0's `answer::page`): the cursor to
//! ask with next, and the paging rules a plugin must keep. Both the
//! control API, which streams pages to its client, and
//! [`super::Dispatcher::query`], which gathers them, go through it.

use super::error::QueryError;
use crate::wit::{Answer, Page};

/// One query's answer, followed call by call.
pub struct Pages {
    name: String,
    cursor: Option<String>,
    first: bool,
}

/// What one call gave.
#[derive(Debug, PartialEq, Eq)]
pub enum Taken {
    /// The whole answer (the first call's, as every 0.1.0 plugin answers).
    Whole(String),
    /// A page's items, more to come.
    Items(Vec<String>),
    /// The last page's items.
    Last(Vec<String>),
}

impl Pages {
    /// Before the first call to plugin `name`.
    pub fn new(name: &str) -> Pages {
        Pages {
            name: name.to_string(),
            cursor: None,
            first: true,
        }
    }

    /// The cursor the next call is made with: none for the first.
    pub fn cursor(&self) -> Option<String> {
        self.cursor.clone()
    }

    /// Takes one call's answer. A whole answer is only one to the first
    /// call; a page must move its cursor on, or the answer would never end.
    pub fn take(&mut self, answer: Answer) -> Result<Taken, QueryError> {
        let first = std::mem::replace(&mut self.first, false);
        let bad = |why| QueryError::BadPage {
            name: self.name.clone(),
            why,
        };
        match answer {
            Answer::Whole(text) if first => Ok(Taken::Whole(text)),
            Answer::Whole(_) => Err(bad("a whole answer to a call for a next page")),
            Answer::Page(Page { items, next: None }) => Ok(Taken::Last(items)),
            Answer::Page(Page {
                next: Some(next), ..
            }) if Some(&next) == self.cursor.as_ref() => {
                Err(bad("a page's next cursor is the one it was asked with"))
            }
            Answer::Page(Page {
                items,
                next: Some(next),
            }) => {
                self.cursor = Some(next);
                Ok(Taken::Items(items))
            }
        }
    }
}

/// Every page of plugin `name`'s answer, gathered into one JSON array (a
/// whole answer as it is), each page asked for by `call` with its cursor:
/// for tests and tools, since it holds the whole answer.
pub fn gather(
    name: &str,
    mut call: impl FnMut(Option<String>) -> Result<Answer, QueryError>,
) -> Result<String, QueryError> {
    let mut pages = Pages::new(name);
    let mut items = Vec::new();
    loop {
        match pages.take(call(pages.cursor())?)? {
            Taken::Whole(text) => return Ok(text),
            Taken::Items(more) => items.extend(more),
            Taken::Last(more) => {
                items.extend(more);
                return Ok(format!("[{}]", items.join(",")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(items: &[&str], next: Option<&str>) -> Answer {
        Answer::Page(Page {
            items: items.iter().map(|s| s.to_string()).collect(),
            next: next.map(str::to_string),
        })
    }

    /// Pages are followed by their cursors to the last; a whole answer is
    /// taken only first; a cursor that does not move is refused.
    #[test]
    fn paging_rules() {
        let mut pages = Pages::new("p");
        assert_eq!(pages.cursor(), None);
        assert_eq!(
            pages.take(page(&["1", "2"], Some("a"))).unwrap(),
            Taken::Items(vec!["1".into(), "2".into()])
        );
        assert_eq!(pages.cursor().as_deref(), Some("a"));
        let err = pages.take(page(&["3"], Some("a"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "plugin \"p\" answered pages wrongly: a page's next cursor is the one it was asked with"
        );
        assert_eq!(
            pages.take(page(&["3"], None)).unwrap(),
            Taken::Last(vec!["3".into()])
        );
        let err = pages.take(Answer::Whole("x".into())).unwrap_err();
        assert!(
            err.to_string()
                .contains("a whole answer to a call for a next page")
        );

        let mut whole = Pages::new("w");
        assert_eq!(
            whole.take(Answer::Whole("{}".into())).unwrap(),
            Taken::Whole("{}".into())
        );
    }
}

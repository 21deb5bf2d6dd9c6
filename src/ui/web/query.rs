//! The address's query string, read once through `crate::share::PageQuery`
//! (the one parser of `?embed=1` and `?backend=cpu`).

use crate::share::PageQuery;

/// What the current address's query string asks of the page.
pub fn current() -> PageQuery {
    let search = web_sys::window().and_then(|w| w.location().search().ok()).unwrap_or_default();
    PageQuery::parse(&search)
}

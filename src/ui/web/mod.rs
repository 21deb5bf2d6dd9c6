//! The page's ties to the browser: the state in the address (`share`), the
//! query string (`query`), presenter mode's keys and bar (`present`),
//! exports (`export`), fetching files (`fetch`), small DOM helpers (`dom`),
//! the end-to-end tests' hook (`test_hook`), which panels are on screen
//! (`visible`) and elements' sizes after layout (`canvas_size`, `width_watch`). Each `web` module wires a
//! plain-Rust twin of the same name to the page: `crate::share`,
//! `crate::present`, `crate::render::export`.

pub mod canvas_size;
pub mod dom;
pub mod export;
pub mod fetch;
pub mod models;
pub mod present;
pub mod query;
pub mod share;
pub mod test_hook;
pub mod visible;
pub mod width_watch;

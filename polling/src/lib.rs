//! The polling transport for htmx views.
//!
//! A live region holds a *control* element that polls `url?after=<cursor>` every few
//! seconds. The answer is `204 No Content` when nothing is new, which htmx treats as
//! "leave the page alone" and which costs the least a poll can cost; otherwise it is
//! the new items for the region plus a fresh control carrying the advanced cursor,
//! swapped out of band. `hx-sync="this:drop"` keeps one poll in flight per region.

use std::fmt;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// The position a client has read a view up to; the same number SSE uses as event id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor(pub u64);

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The query of a poll request: `?after=<cursor>`.
#[derive(Debug, Default, Deserialize)]
pub struct PollQuery {
    pub after: Option<String>,
}

/// An `after` value that is not a cursor.
#[derive(Debug, PartialEq, Eq)]
pub struct BadCursor(pub String);

impl fmt::Display for BadCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The value goes back into a page: control characters are shown escaped and a
        // long value is cut.
        let shown: String = self.0.chars().take(40).collect();
        let more = if self.0.chars().count() > 40 {
            "…"
        } else {
            ""
        };
        write!(
            f,
            "'{}{more}' is not a cursor: expected a whole number",
            shown.escape_debug()
        )
    }
}

impl std::error::Error for BadCursor {}

impl PollQuery {
    /// The cursor asked for, `None` when absent.
    pub fn cursor(&self) -> Result<Option<Cursor>, BadCursor> {
        match self.after.as_deref().map(str::trim) {
            None | Some("") => Ok(None),
            Some(text) if text.bytes().all(|b| b.is_ascii_digit()) => text
                .parse()
                .map(|n| Some(Cursor(n)))
                .map_err(|_| BadCursor(text.to_owned())),
            Some(text) => Err(BadCursor(text.to_owned())),
        }
    }
}

/// The element that polls for a region.
#[derive(Clone, Debug)]
pub struct Control {
    /// DOM id of the control; an answer replaces it by this id.
    pub id: String,
    /// The poll endpoint, without query.
    pub url: String,
    pub cursor: Cursor,
    pub every: Duration,
    /// CSS selector of the element new items go into.
    pub target: String,
    /// htmx swap style for new items, such as `afterbegin` for newest-first lists.
    pub swap: &'static str,
}

impl Control {
    /// The control as first rendered in a page.
    pub fn render(&self) -> Markup {
        self.markup(false)
    }

    /// The control inside a poll answer, replacing the one that asked.
    pub fn render_oob(&self) -> Markup {
        self.markup(true)
    }

    /// The `hx-trigger` value for this control's interval.
    pub fn trigger(&self) -> String {
        format!("every {}ms", self.every.as_millis().max(1))
    }

    fn markup(&self, oob: bool) -> Markup {
        let url = format!("{}?after={}", self.url, self.cursor);
        html! {
            div id=(&self.id) class="live-ctl" data-transport="poll" data-cursor=(self.cursor)
                hx-get=(url) hx-trigger=(self.trigger()) hx-sync="this:drop"
                hx-target=(&self.target) hx-swap=(self.swap)
                hx-swap-oob=[oob.then_some("true")] {}
        }
    }
}

/// What a poll returns.
#[derive(Debug)]
pub enum Answer {
    /// Nothing is new since the cursor: `204 No Content`.
    NothingNew,
    /// New items (for the control's target) and the control with the advanced cursor.
    Fresh { items: Markup, control: Markup },
    /// The cursor cannot be continued from (older than what is kept): the whole region,
    /// rendered afresh, replaces the region with the given DOM id.
    Reset { region_id: String, region: Markup },
}

impl Answer {
    /// A short name of the outcome, for metrics: `nothing_new`, `new` or `reset`.
    pub fn outcome(&self) -> &'static str {
        match self {
            Answer::NothingNew => "nothing_new",
            // A cursor moved past items that were not for this region.
            Answer::Fresh { items, .. } if items.0.is_empty() => "nothing_new",
            Answer::Fresh { .. } => "new",
            Answer::Reset { .. } => "reset",
        }
    }

    /// Bytes of the body this answer sends.
    pub fn body_len(&self) -> usize {
        match self {
            Answer::NothingNew => 0,
            Answer::Fresh { items, control } => items.0.len() + control.0.len(),
            Answer::Reset { region, .. } => region.0.len(),
        }
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::NothingNew => StatusCode::NO_CONTENT.into_response(),
            Answer::Fresh { items, control } => {
                let body = html! { (control) (items) };
                body.into_response()
            }
            Answer::Reset { region_id, region } => {
                let mut response = region.into_response();
                let headers = response.headers_mut();
                if let Ok(target) = HeaderValue::from_str(&format!("#{region_id}")) {
                    headers.insert("HX-Retarget", target);
                }
                headers.insert("HX-Reswap", HeaderValue::from_static("outerHTML"));
                response
            }
        }
    }
}

/// Marks a response as never cached, so a proxy cannot answer a poll with old items.
pub fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_parsing() {
        let query = |after: Option<&str>| PollQuery {
            after: after.map(str::to_owned),
        };
        assert_eq!(query(None).cursor(), Ok(None));
        assert_eq!(query(Some("17")).cursor(), Ok(Some(Cursor(17))));
        assert!(query(Some("-3")).cursor().is_err());
        assert!(query(Some("abc")).cursor().is_err());
        assert!(query(Some("184467440737095516150")).cursor().is_err());
    }

    #[test]
    fn bad_cursors_are_echoed_escaped_and_short() {
        let message = BadCursor("a\0b".into()).to_string();
        assert_eq!(message, "'a\\0b' is not a cursor: expected a whole number");
        let long = BadCursor("x".repeat(500)).to_string();
        assert!(
            long.starts_with(&format!("'{}…'", "x".repeat(40))),
            "{long}"
        );
    }

    #[test]
    fn control_polls_after_its_cursor_and_drops_overlapping_polls() {
        let control = Control {
            id: "feed-ctl".into(),
            url: "/feed/poll".into(),
            cursor: Cursor(41),
            every: Duration::from_secs(2),
            target: "#feed".into(),
            swap: "afterbegin",
        };
        let page = control.render().into_string();
        assert!(page.contains(r#"hx-get="/feed/poll?after=41""#), "{page}");
        assert!(page.contains(r#"hx-trigger="every 2000ms""#), "{page}");
        assert!(page.contains(r#"hx-sync="this:drop""#), "{page}");
        assert!(!page.contains("hx-swap-oob"), "{page}");
        assert!(
            control
                .render_oob()
                .into_string()
                .contains(r#"hx-swap-oob="true""#)
        );
    }

    #[test]
    fn nothing_new_is_204() {
        assert_eq!(
            Answer::NothingNew.into_response().status(),
            StatusCode::NO_CONTENT
        );
    }
}

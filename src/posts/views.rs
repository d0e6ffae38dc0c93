//! How posts look. One function renders a post for the page, the poll answer and the
//! SSE event alike, which is what makes the two transports interchangeable.

use maud::{Markup, html};

use super::mentions::{Segment, segments};
use super::store::PostRow;

/// Characters a post may have.
pub const MAX_POST_CHARS: usize = 500;

pub fn post_item(post: &PostRow) -> Markup {
    html! {
        article id={ "post-" (post.id) } class="item post" data-cursor=(post.id)
            data-published-ms=(post.created_ms) {
            header {
                span.author { "@" (post.author) }
                " "
                time datetime=(post.created_ms) { (clock(post.created_ms)) }
            }
            p.body dir="auto" {
                @for segment in segments(&post.body) {
                    @match segment {
                        Segment::Text(text) => (text),
                        Segment::Mention(name) => span.mention { (name) },
                    }
                }
            }
        }
    }
}

/// Posts, newest first.
pub fn post_items(posts: &[PostRow]) -> Markup {
    html! { @for post in posts { (post_item(post)) } }
}

/// The "write a post" form; `note` confirms the last post or explains a refusal.
pub fn post_form(body: &str, note: Option<(&str, bool)>) -> Markup {
    html! {
        form #post-form method="post" action="/posts/create/"
            hx-post="/posts/create/" hx-target="this" hx-swap="outerHTML" {
            label for="post-body" { "Say something (mention people with @handle or @email)" }
            textarea #post-body name="body" rows="3" maxlength=(MAX_POST_CHARS) required {
                (body)
            }
            @if let Some((text, is_error)) = note {
                @if is_error {
                    p.error role="alert" { (text) }
                } @else {
                    p.note role="status" { (text) }
                }
            }
            button type="submit" { "Post" }
        }
    }
}

/// The online list of the presence region.
pub fn presence_items(online: &[String]) -> Markup {
    html! {
        @if online.is_empty() {
            p.empty { "Nobody is online." }
        } @else {
            ul.presence {
                @for handle in online {
                    li data-handle=(handle) { span.dot aria-hidden="true" {} "@" (handle) }
                }
            }
        }
    }
}

/// `HH:MM:SS` UTC of a Unix time in milliseconds.
pub fn clock(ms: i64) -> String {
    let seconds = ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_text_is_escaped_and_mentions_marked() {
        let post = PostRow {
            id: 7,
            author: "ada".into(),
            body: "<script>x</script> hi @bob".into(),
            created_ms: 3_723_000,
        };
        let html = post_item(&post).into_string();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(
            html.contains(r#"<span class="mention">@bob</span>"#),
            "{html}"
        );
        assert!(html.contains(r#"id="post-7""#), "{html}");
        assert!(html.contains("01:02:03"), "{html}");
    }
}

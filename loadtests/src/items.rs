//! What a follower reads out of the app's answers: each post's id and publish time, and
//! the cursor of a poll answer.

/// One post seen by a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seen {
    pub id: u64,
    /// The server's clock when the post was written, in Unix milliseconds.
    pub published_ms: u64,
}

/// Every `<article id="post-N" … data-published-ms="M">` in a fragment, in order.
pub fn posts(html: &str) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find("id=\"post-") {
        rest = &rest[at + "id=\"post-".len()..];
        let Some(id) = leading_number(rest) else {
            continue;
        };
        // The article's own attributes end at its first `>`.
        let tag_end = rest.find('>').unwrap_or(rest.len());
        let published = rest[..tag_end]
            .find("data-published-ms=\"")
            .and_then(|at| leading_number(&rest[at + "data-published-ms=\"".len()..]));
        if let Some(published_ms) = published {
            seen.push(Seen { id, published_ms });
        }
    }
    seen
}

/// The cursor a poll answer's control carries (`data-cursor="N"` of `{region}-ctl`).
pub fn control_cursor(html: &str, region: &str) -> Option<u64> {
    let at = html.find(&format!("id=\"{region}-ctl\""))?;
    let rest = &html[at..];
    let tag_end = rest.find('>').unwrap_or(rest.len());
    let key = rest[..tag_end].find("data-cursor=\"")? + "data-cursor=\"".len();
    leading_number(&rest[key..])
}

fn leading_number(text: &str) -> Option<u64> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    text[..digits].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = concat!(
        r#"<div id="all-ctl" data-cursor="42" hx-get="/posts/all/poll?after=42"></div>"#,
        r#"<article id="post-42" class="item post" data-cursor="42" "#,
        r#"data-published-ms="1700000000123"><p>hi</p></article>"#,
        r#"<article id="post-41" data-published-ms="1700000000001">"#,
        r#"<a id="post-x">no</a></article>"#,
    );

    #[test]
    fn reads_posts_and_their_publish_times() {
        assert_eq!(
            posts(ANSWER),
            [
                Seen {
                    id: 42,
                    published_ms: 1_700_000_000_123
                },
                Seen {
                    id: 41,
                    published_ms: 1_700_000_000_001
                },
            ]
        );
        assert!(posts("<p>nothing</p>").is_empty());
    }

    #[test]
    fn reads_the_control_cursor_of_the_region() {
        assert_eq!(control_cursor(ANSWER, "all"), Some(42));
        assert_eq!(control_cursor(ANSWER, "lobby"), None);
    }
}

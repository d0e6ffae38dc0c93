//! Cleaning status HTML before it reaches a page.
//!
//! Status content comes from every server in the federation, so it is untrusted however
//! well-behaved the instance being mirrored is. The allow-list below is what Mastodon itself
//! renders for a post, which keeps mentions, hashtags and shortened links looking right while
//! nothing active (scripts, handlers, frames, styles, images) survives.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use ammonia::{Builder, UrlRelative};

const TAGS: &[&str] = &[
    "p",
    "br",
    "span",
    "a",
    "del",
    "pre",
    "code",
    "blockquote",
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ul",
    "ol",
    "li",
];

/// Elements removed together with everything inside them.
///
/// Unwrapping these would leave their raw text (a script body, a style sheet, an SVG's
/// markup) in the status, which is noise at best.
const DROP_WITH_CONTENT: &[&str] = &[
    "script", "style", "iframe", "noscript", "object", "svg", "math", "template", "textarea",
    "select", "title",
];

/// Classes Mastodon puts on spans: `h-card`, `mention` and `hashtag` mark up mentions and
/// tags; `invisible` and `ellipsis` shorten long link texts.
const SPAN_CLASSES: &[&str] = &["h-card", "mention", "hashtag", "invisible", "ellipsis"];

/// Classes Mastodon puts on the links of mentions and hashtags, kept for styling them.
const LINK_CLASSES: &[&str] = &["u-url", "mention", "hashtag"];

static CLEANER: LazyLock<Builder<'static>> = LazyLock::new(|| {
    let tags: HashSet<&str> = TAGS.iter().copied().collect();
    let drop: HashSet<&str> = DROP_WITH_CONTENT.iter().copied().collect();
    let tag_attributes = HashMap::from([("a", HashSet::from(["href"]))]);
    let classes = HashMap::from([
        ("span", SPAN_CLASSES.iter().copied().collect::<HashSet<_>>()),
        ("a", LINK_CLASSES.iter().copied().collect::<HashSet<_>>()),
    ]);

    let mut builder = Builder::empty();
    builder
        .tags(tags)
        .clean_content_tags(drop)
        .generic_attributes(HashSet::new())
        .tag_attributes(tag_attributes)
        .allowed_classes(classes)
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        // A relative link would resolve against this app, not the status's server.
        .url_relative(UrlRelative::Deny)
        .link_rel(Some("nofollow noopener noreferrer"))
        .set_tag_attribute_value("a", "target", "_blank")
        .strip_comments(true);
    builder
});

/// Returns `html` reduced to the markup Mastodon renders, safe to embed in a page.
pub fn sanitize_status_html(html: &str) -> String {
    CLEANER.clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::sanitize_status_html as clean;

    fn assert_free_of(out: &str, needles: &[&str]) {
        let lower = out.to_ascii_lowercase();
        for needle in needles {
            assert!(!lower.contains(needle), "{needle:?} survived in {out:?}");
        }
    }

    #[test]
    fn keeps_mastodon_markup() {
        let html = concat!(
            r#"<p><span class="h-card" translate="no"><a href="https://example.com/@ana" "#,
            r#"class="u-url mention">@<span>ana</span></a></span> see "#,
            r#"<a href="https://example.com/tags/rust" class="mention hashtag" rel="tag">"#,
            r##"#<span>rust</span></a><br><a href="https://example.org/a/very/long/path" "##,
            r#"rel="nofollow noopener" target="_blank"><span class="invisible">https://</span>"#,
            r#"<span class="ellipsis">example.org/a/very</span><span class="invisible">"#,
            r#"/long/path</span></a></p><blockquote><p><del>x</del> <code>y</code></p>"#,
            r#"</blockquote><ul><li><em>a</em></li></ul>"#,
        );
        let out = clean(html);
        for kept in [
            r#"<span class="h-card">"#,
            r#"class="u-url mention""#,
            r#"class="mention hashtag""#,
            r#"<span class="invisible">https://</span>"#,
            r#"<span class="ellipsis">"#,
            "<br>",
            "<blockquote><p><del>x</del> <code>y</code></p></blockquote>",
            "<ul><li><em>a</em></li></ul>",
        ] {
            assert!(out.contains(kept), "{kept:?} lost in {out:?}");
        }
        assert_free_of(&out, &["translate", "rel=\"tag\""]);
    }

    #[test]
    fn links_get_forced_rel_and_target() {
        let out = clean(r#"<a href="https://example.net/" target="_self" rel="opener">x</a>"#);
        assert!(out.contains(r#"target="_blank""#), "{out}");
        assert!(
            out.contains(r#"rel="nofollow noopener noreferrer""#),
            "{out}"
        );
        assert_free_of(&out, &["_self", "\"opener\""]);
    }

    #[test]
    fn strips_scripts_handlers_and_active_content() {
        let nasty = concat!(
            r#"<p onclick="steal()">hi<script>alert(1)</script></p>"#,
            r#"<style>p{display:none}</style><iframe src="https://example.com/"></iframe>"#,
            r#"<img src=x onerror=alert(1)><svg onload=alert(1)><circle/></svg>"#,
            r#"<a href="javascript:alert(1)">j</a><a href=" JaVaScRiPt:alert(1)">k</a>"#,
            r#"<a href="&#106;avascript:alert(1)">e</a><a href="data:text/html,x">d</a>"#,
            r#"<a href="vbscript:x">v</a><a href="/relative">r</a>"#,
            r#"<span style="color:red" class="evil invisible" onmouseover="x()">s</span>"#,
            r#"<form action="https://example.com/"><input name=a><button>b</button></form>"#,
            r#"<object data="x.swf"></object><embed src="x"><!-- c --><meta http-equiv=x>"#,
            r#"<base href="https://example.com/"><link rel=stylesheet href=x>"#,
        );
        let out = clean(nasty);
        assert_free_of(
            &out,
            &[
                "<script",
                "alert",
                "onclick",
                "onerror",
                "onload",
                "onmouseover",
                "<style",
                "display:none",
                "<iframe",
                "<img",
                "<svg",
                "javascript",
                "data:",
                "vbscript",
                "/relative",
                "style=",
                "evil",
                "<form",
                "<input",
                "<button",
                "<object",
                "<embed",
                "<!--",
                "<meta",
                "<base",
                "<link",
                "href=\"x",
            ],
        );
        assert!(out.contains(r#"<span class="invisible">s</span>"#), "{out}");
        assert!(out.contains("<p>hi</p>"), "{out}");
    }

    #[test]
    fn mailto_and_broken_markup() {
        let out = clean(r#"<a href="mailto:someone@example.com">m</a><p><b>open <i>nest"#);
        assert!(
            out.contains(r#"href="mailto:someone@example.com""#),
            "{out}"
        );
        assert!(out.ends_with("<p><b>open <i>nest</i></b></p>"), "{out}");
    }

    #[test]
    fn text_is_escaped() {
        let out = clean("1 < 2 &amp; \"q\" <notatag x=1>t</notatag>");
        assert_eq!(out, "1 &lt; 2 &amp; \"q\" t");
    }
}

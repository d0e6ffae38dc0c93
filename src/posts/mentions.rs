//! Finding `@handle` and `@email` mentions in a post's text.

/// The people a post names.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mentions {
    pub handles: Vec<String>,
    pub emails: Vec<String>,
}

/// A piece of a post's text: plain, or a mention as written (with its `@`).
#[derive(Debug, PartialEq, Eq)]
pub enum Segment<'a> {
    Text(&'a str),
    Mention(&'a str),
}

enum Kind {
    Handle(String),
    Email(String),
}

pub fn parse(body: &str) -> Mentions {
    let mut mentions = Mentions::default();
    for (_, _, kind) in scan(body) {
        let list = match kind {
            Kind::Handle(handle) => (&mut mentions.handles, handle),
            Kind::Email(email) => (&mut mentions.emails, email),
        };
        if !list.0.contains(&list.1) {
            list.0.push(list.1);
        }
    }
    mentions
}

/// The text split into plain runs and mentions, for rendering.
pub fn segments(body: &str) -> Vec<Segment<'_>> {
    let mut pieces = Vec::new();
    let mut at = 0;
    for (start, end, _) in scan(body) {
        if start > at {
            pieces.push(Segment::Text(&body[at..start]));
        }
        pieces.push(Segment::Mention(&body[start..end]));
        at = end;
    }
    if at < body.len() {
        pieces.push(Segment::Text(&body[at..]));
    }
    pieces
}

/// Byte ranges (from the `@`) and kinds of the mentions in `body`.
fn scan(body: &str) -> Vec<(usize, usize, Kind)> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let is_run = |c: char| c.is_ascii_alphanumeric() || "_.+-@".contains(c);
    let mut found = Vec::new();
    let mut previous: Option<char> = None;
    let mut chars = body.char_indices().peekable();

    while let Some((start, c)) = chars.next() {
        // "ada@example.com" inside a word is an address, not a mention.
        let starts_mention = c == '@' && !previous.is_some_and(is_word);
        previous = Some(c);
        if !starts_mention {
            continue;
        }

        let run_start = start + 1;
        let mut run_end = run_start;
        while let Some(&(i, next)) = chars.peek() {
            if !is_run(next) {
                break;
            }
            run_end = i + next.len_utf8();
            previous = Some(next);
            chars.next();
        }
        let run = &body[run_start..run_end];

        if let Some((len, email)) = email_in(run) {
            found.push((start, run_start + len, Kind::Email(email)));
        } else {
            let len = run.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'));
            let handle = &run[..len.unwrap_or(run.len())];
            if !handle.is_empty() && handle.len() <= 30 {
                found.push((
                    start,
                    run_start + handle.len(),
                    Kind::Handle(handle.to_lowercase()),
                ));
            }
        }
    }
    found
}

/// An email address at the start of `run`, with its length, if there is one.
fn email_in(run: &str) -> Option<(usize, String)> {
    let trimmed = run.trim_end_matches(['.', '-', '+', '@']);
    let (local, domain) = trimmed.split_once('@')?;
    let valid = !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && !domain.starts_with('.')
        && !domain.contains("..");
    valid.then(|| (trimmed.len(), trimmed.to_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_handles_and_emails() {
        let found = parse("hi @Ada and @bob@Example.com, also @ada again. Mail me: me@x.org");
        assert_eq!(found.handles, ["ada"]);
        assert_eq!(found.emails, ["bob@example.com"]);
    }

    #[test]
    fn trailing_punctuation_is_not_part_of_a_mention() {
        let found = parse("thanks @carol. (@dave!) @eve@example.org.");
        assert_eq!(found.handles, ["carol", "dave"]);
        assert_eq!(found.emails, ["eve@example.org"]);
        assert_eq!(parse("@ alone @").handles, Vec::<String>::new());
    }

    #[test]
    fn segments_cover_the_text_exactly() {
        let body = "héllo @ada, see @bob@example.com!";
        let pieces = segments(body);
        assert_eq!(
            pieces,
            [
                Segment::Text("héllo "),
                Segment::Mention("@ada"),
                Segment::Text(", see "),
                Segment::Mention("@bob@example.com"),
                Segment::Text("!"),
            ]
        );
    }
}

//! An incremental reader of the Mastodon streaming wire format.
//!
//! Mastodon's HTTP streaming endpoints speak Server-Sent Events: `event:` and `data:` field
//! lines, a blank line that dispatches the event, and `:`-prefixed comment lines that the
//! server sends as heartbeats (`:thump` every 15 seconds, `:)` right after connecting).
//!
//! The reader is push-based so the same code serves a network body (chunks of any size, which
//! may cut a UTF-8 character or a CRLF pair in two), a replay file and a recording.

/// Default bound for one line and for one event's accumulated data.
///
/// A real status, even a boost with a long inner status, is a few tens of KiB; a megabyte
/// leaves ample room while stopping a broken or hostile peer from growing the buffer forever.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One unit of the stream as the wire carries it, before any JSON decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireEvent {
    /// A dispatched event; `name` is `"message"` when the event had no `event:` line.
    Event { name: String, data: String },
    /// A comment line, without its leading colon (and one optional space).
    Comment(String),
}

impl WireEvent {
    /// Renders the event back into the wire format, ready to append to a recording.
    ///
    /// Data that spans several lines is written as several `data:` lines, which is how the
    /// format carries newlines; a carriage return in data counts as a line break, because the
    /// reader on the other end would split there anyway.
    pub fn to_wire(&self) -> String {
        match self {
            WireEvent::Comment(text) => {
                let mut out = String::with_capacity(text.len() + 2);
                for line in split_lines(text) {
                    // The reader drops one space after the colon, so keep a leading one.
                    out.push_str(if line.starts_with(' ') { ": " } else { ":" });
                    out.push_str(line);
                    out.push('\n');
                }
                out
            }
            WireEvent::Event { name, data } => {
                let mut out = String::with_capacity(name.len() + data.len() + 16);
                if name != "message" {
                    out.push_str("event: ");
                    out.push_str(&name.replace(['\r', '\n'], " "));
                    out.push('\n');
                }
                for line in split_lines(data) {
                    out.push_str("data: ");
                    out.push_str(line);
                    out.push('\n');
                }
                out.push('\n');
                out
            }
        }
    }
}

/// Splits on LF, CRLF and lone CR, always yielding at least one (possibly empty) line.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(i) => {
                let skip = if current[i..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[i + skip..]);
                Some(&current[..i])
            }
        }
    })
}

/// Push-based Server-Sent Events parser.
///
/// Feed it byte chunks as they arrive; it returns every event and comment those bytes
/// completed. Bytes of an unfinished line stay buffered until the next chunk.
#[derive(Debug)]
pub struct WireReader {
    max_line: usize,
    line: Vec<u8>,
    /// The previous chunk ended in CR, so an LF opening the next chunk belongs to it.
    pending_cr: bool,
    /// The current line outgrew `max_line`; its remaining bytes are skipped.
    overflowing: bool,
    /// Whether the line that overflowed was a comment, which cannot spoil an event.
    overflow_is_comment: bool,
    at_stream_start: bool,
    event_name: Option<String>,
    data: String,
    /// Part of the current event was dropped, so it must not be dispatched half-read.
    event_spoiled: bool,
}

impl Default for WireReader {
    fn default() -> Self {
        Self::with_max_line(DEFAULT_MAX_LINE)
    }
}

impl WireReader {
    /// A reader with the default one-megabyte line bound.
    pub fn new() -> Self {
        Self::default()
    }

    /// A reader whose line (and per-event data) bound is `max_line` bytes.
    pub fn with_max_line(max_line: usize) -> Self {
        Self {
            max_line: max_line.max(1),
            line: Vec::new(),
            pending_cr: false,
            overflowing: false,
            overflow_is_comment: false,
            at_stream_start: true,
            event_name: None,
            data: String::new(),
            event_spoiled: false,
        }
    }

    /// Consumes one chunk and returns the events and comments it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<WireEvent> {
        let mut out = Vec::new();
        let mut rest = chunk;

        if self.pending_cr && !rest.is_empty() {
            self.pending_cr = false;
            if rest[0] == b'\n' {
                rest = &rest[1..];
            }
        }

        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') else {
                self.push_partial(rest);
                break;
            };

            self.push_partial(&rest[..end]);
            let was_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];

            if was_cr {
                match rest.first() {
                    None => self.pending_cr = true,
                    Some(b'\n') => rest = &rest[1..],
                    Some(_) => {}
                }
            }

            self.finish_line(&mut out);
        }

        out
    }

    /// Flushes what is left at the end of a finite input such as a file.
    ///
    /// The SSE specification discards an event that the stream did not terminate; a file cut
    /// without its final blank line is still worth reading, so this treats the end of input
    /// as a line end followed by a blank line.
    pub fn finish(&mut self) -> Vec<WireEvent> {
        let mut out = Vec::new();
        self.pending_cr = false;

        if !self.line.is_empty() || self.overflowing {
            self.finish_line(&mut out);
        }

        self.dispatch(&mut out);
        out
    }

    fn push_partial(&mut self, bytes: &[u8]) {
        if self.overflowing || bytes.is_empty() {
            return;
        }

        if self.line.len() + bytes.len() > self.max_line {
            let first = self.line.first().or(bytes.first());
            self.overflow_is_comment = first == Some(&b':');
            self.overflowing = true;
            self.line = Vec::new();
            tracing::warn!(
                max_line = self.max_line,
                "dropping an over-long stream line"
            );
            return;
        }

        self.line.extend_from_slice(bytes);
    }

    fn finish_line(&mut self, out: &mut Vec<WireEvent>) {
        if self.overflowing {
            self.overflowing = false;
            if !self.overflow_is_comment {
                self.event_spoiled = true;
            }
            self.at_stream_start = false;
            return;
        }

        let mut raw: &[u8] = &self.line;
        if self.at_stream_start {
            self.at_stream_start = false;
            raw = raw.strip_prefix(BOM).unwrap_or(raw);
        }

        let line = String::from_utf8_lossy(raw).into_owned();
        self.line.clear();
        self.process_line(&line, out);
    }

    fn process_line(&mut self, line: &str, out: &mut Vec<WireEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }

        if let Some(comment) = line.strip_prefix(':') {
            let text = comment.strip_prefix(' ').unwrap_or(comment);
            out.push(WireEvent::Comment(text.to_owned()));
            return;
        }

        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };

        match field {
            "event" => self.event_name = Some(value.to_owned()),
            "data" => {
                if self.data.len() + value.len() + 1 > self.max_line {
                    if !self.event_spoiled {
                        tracing::warn!(max_line = self.max_line, "dropping an over-long event");
                    }
                    self.event_spoiled = true;
                    return;
                }
                self.data.push_str(value);
                self.data.push('\n');
            }
            // `id` and `retry` steer browser reconnection; a mirror has no use for them, and
            // unknown fields are ignored by the specification.
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<WireEvent>) {
        let name = self.event_name.take();
        let mut data = std::mem::take(&mut self.data);

        if std::mem::take(&mut self.event_spoiled) {
            tracing::warn!(
                event = name.as_deref().unwrap_or("message"),
                "skipping a cut event"
            );
            return;
        }

        // An event without data lines is not dispatched, as the specification says.
        if data.is_empty() {
            return;
        }

        data.pop();
        let name = match name {
            Some(name) if !name.is_empty() => name,
            _ => "message".to_owned(),
        };
        out.push(WireEvent::Event { name, data });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> WireEvent {
        WireEvent::Event {
            name: name.to_owned(),
            data: data.to_owned(),
        }
    }

    #[test]
    fn parses_fields_comments_and_defaults() {
        let mut reader = WireReader::new();
        let got = reader.feed(b":)\nevent: update\ndata: {}\n\ndata:x\ndata\n\nid: 5\n\n:thump\n");
        assert_eq!(
            got,
            vec![
                WireEvent::Comment(")".into()),
                event("update", "{}"),
                event("message", "x\n"),
                WireEvent::Comment("thump".into()),
            ]
        );
    }

    #[test]
    fn bom_is_stripped_only_at_start() {
        let mut reader = WireReader::new();
        let got = reader.feed(b"\xEF\xBB\xBFdata: a\n\n\xEF\xBB\xBFdata: b\n\n");
        assert_eq!(got, vec![event("message", "a")]);
    }

    #[test]
    fn crlf_split_across_chunks_is_one_line_end() {
        let mut reader = WireReader::new();
        let mut got = reader.feed(b"data: a\r");
        got.extend(reader.feed(b"\n\r"));
        got.extend(reader.feed(b"\ndata: b\r\r"));
        assert_eq!(got, vec![event("message", "a"), event("message", "b")]);
    }

    #[test]
    fn over_long_line_spoils_only_its_event() {
        let mut reader = WireReader::with_max_line(16);
        let mut got = reader.feed(b"event: update\ndata: 0123456789");
        got.extend(reader.feed(b"0123456789\n\n:0123456789abcdefghij\n"));
        got.extend(reader.feed(b"data: ok\n\n"));
        assert_eq!(got, vec![event("message", "ok")]);
    }

    #[test]
    fn finish_flushes_an_unterminated_event() {
        let mut reader = WireReader::new();
        assert!(reader.feed(b"event: delete\ndata: 12").is_empty());
        assert_eq!(reader.finish(), vec![event("delete", "12")]);
    }

    #[test]
    fn to_wire_round_trips() {
        let events = vec![
            event("update", "{\"a\":1}"),
            event("message", "two\nlines"),
            event("status.update", ""),
            WireEvent::Comment("thump".into()),
            WireEvent::Comment(" spaced".into()),
        ];
        let text: String = events.iter().map(WireEvent::to_wire).collect();
        assert_eq!(WireReader::new().feed(text.as_bytes()), events);
    }
}

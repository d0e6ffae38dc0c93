//! The client side of an SSE response, kept small so that one process can follow tens
//! of thousands of streams: an HTTP/1.1 chunked-body decoder, an event-stream parser and
//! the publish time carried by the mirror's items.

/// Decodes a `Transfer-Encoding: chunked` body as it arrives, in pieces of any size.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
    size_line: Vec<u8>,
}

#[derive(Debug, Default, PartialEq)]
enum ChunkState {
    /// Reading the hexadecimal size line.
    #[default]
    Size,
    /// This many data bytes of the current chunk are still to come.
    Data(usize),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The last (empty) chunk came; the body is over.
    Done,
}

impl Chunked {
    /// Hands the body bytes in `input` to `out`; an error for a size line that is not one.
    pub fn feed(&mut self, mut input: &[u8], mut out: impl FnMut(&[u8])) -> Result<(), String> {
        while !input.is_empty() {
            match self.state {
                ChunkState::Size => match input.iter().position(|&b| b == b'\n') {
                    Some(end) => {
                        self.size_line.extend_from_slice(&input[..end]);
                        input = &input[end + 1..];
                        let size = chunk_size(&self.size_line)?;
                        self.size_line.clear();
                        self.state = if size == 0 {
                            ChunkState::Done
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    None => {
                        if self.size_line.len() + input.len() > 1024 {
                            return Err("chunk size line too long".into());
                        }
                        self.size_line.extend_from_slice(input);
                        return Ok(());
                    }
                },
                ChunkState::Data(left) => {
                    let take = left.min(input.len());
                    out(&input[..take]);
                    input = &input[take..];
                    self.state = if take == left {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left - take)
                    };
                }
                ChunkState::DataEnd => {
                    let byte = input[0];
                    input = &input[1..];
                    match byte {
                        b'\r' => {}
                        b'\n' => self.state = ChunkState::Size,
                        _ => return Err("chunk data longer than its size".into()),
                    }
                }
                ChunkState::Done => return Ok(()),
            }
        }
        Ok(())
    }

    /// Whether the last chunk has come.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

fn chunk_size(line: &[u8]) -> Result<usize, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex).map_err(|_| "chunk size is not text")?;
    usize::from_str_radix(hex.trim(), 16).map_err(|_| format!("bad chunk size {hex:?}"))
}

/// An event-stream parser after the HTML standard's rules: lines end in CR, LF or CRLF
/// (split anywhere between reads), `:` starts a comment, a blank line dispatches the
/// event when it has data, and `data` lines join with LF. `id` and `retry` are read
/// past: a load client neither reconnects nor resumes.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    event: Vec<u8>,
    has_data: bool,
    /// The last line ended in CR, so a LF starting the next input belongs to it.
    after_cr: bool,
}

impl SseParser {
    /// Parses `input`, calling `on_event(name, data)` for every complete event.
    pub fn feed(&mut self, mut input: &[u8], mut on_event: impl FnMut(&str, &[u8])) {
        while !input.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if input[0] == b'\n' {
                    input = &input[1..];
                    continue;
                }
            }
            match input.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(end) => {
                    self.line.extend_from_slice(&input[..end]);
                    self.after_cr = input[end] == b'\r';
                    input = &input[end + 1..];
                    self.end_line(&mut on_event);
                }
                None => {
                    self.line.extend_from_slice(input);
                    return;
                }
            }
        }
    }

    fn end_line(&mut self, on_event: &mut impl FnMut(&str, &[u8])) {
        let line = &self.line;
        if line.is_empty() {
            if self.has_data {
                // The last data line's LF is not part of the data.
                self.data.pop();
                let name = match std::str::from_utf8(&self.event) {
                    Ok("") | Err(_) => "message",
                    Ok(name) => name,
                };
                on_event(name, &self.data);
            }
            self.data.clear();
            self.event.clear();
            self.has_data = false;
        } else if line[0] != b':' {
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (&line[..], &[][..]),
            };
            match field {
                b"data" => {
                    self.data.extend_from_slice(value);
                    self.data.push(b'\n');
                    self.has_data = true;
                }
                b"event" => {
                    self.event.clear();
                    self.event.extend_from_slice(value);
                }
                _ => {}
            }
        }
        self.line.clear();
    }
}

/// The server's clock when the item was stored, from its `data-published-ms` attribute.
pub fn published_ms(data: &[u8]) -> Option<u64> {
    const KEY: &[u8] = b"data-published-ms=";
    let at = data.windows(KEY.len()).position(|window| window == KEY)?;
    let value = &data[at + KEY.len()..];
    let value = value
        .strip_prefix(b"\"")
        .or_else(|| value.strip_prefix(b"'"))
        .unwrap_or(value);
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 19 {
        return None;
    }
    std::str::from_utf8(&value[..digits]).ok()?.parse().ok()
}

/// The publish time of a new status, the only kind whose delay it gives: an edit
/// (swapped out of band, `hx-swap-oob`) keeps the time its status was first stored,
/// and a deletion carries none.
pub fn new_item_published_ms(data: &[u8]) -> Option<u64> {
    const OOB: &[u8] = b"hx-swap-oob";
    if data.windows(OOB.len()).any(|window| window == OOB) {
        return None;
    }
    published_ms(data)
}

/// Publish-to-arrival delay; a clock that reads earlier than the publish counts as 0.
pub fn delay_ms(published_ms: u64, arrived_ms: u64) -> u64 {
    arrived_ms.saturating_sub(published_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events_of(pieces: &[&[u8]]) -> Vec<(String, String)> {
        let mut parser = SseParser::default();
        let mut events = Vec::new();
        for piece in pieces {
            parser.feed(piece, |name, data| {
                events.push((name.to_owned(), String::from_utf8(data.to_vec()).unwrap()))
            });
        }
        events
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect()
    }

    #[test]
    fn events_dispatch_on_blank_lines_with_names_and_joined_data() {
        let stream: &[u8] = b"retry: 2000\n: hello\n\nid: 7\nevent: item\ndata: <a>\ndata:b\n\n\
              data: plain\n\n";
        assert_eq!(
            events_of(&[stream]),
            pairs(&[("item", "<a>\nb"), ("message", "plain")])
        );
    }

    #[test]
    fn comments_and_data_less_events_dispatch_nothing() {
        let stream: &[u8] = b":\n\n: keep-alive\n\nevent: item\n\nid: 3\n\n";
        assert!(events_of(&[stream]).is_empty());
    }

    #[test]
    fn every_split_point_and_line_ending_gives_the_same_events() {
        let whole: &[u8] =
            b"event: item\r\ndata: x\r\ndata: y\r\n\r\nevent: reset\rdata: reload\r\rdata:\n\n";
        let expected = pairs(&[("item", "x\ny"), ("reset", "reload"), ("message", "")]);
        assert_eq!(events_of(&[whole]), expected);
        for split in 0..whole.len() {
            let (a, b) = whole.split_at(split);
            assert_eq!(events_of(&[a, b]), expected, "split at {split}");
        }
        let bytes: Vec<&[u8]> = whole.chunks(1).collect();
        assert_eq!(events_of(&bytes), expected);
    }

    #[test]
    fn an_event_waits_for_its_blank_line() {
        assert!(events_of(&[b"event: item\ndata: half"]).is_empty());
        assert_eq!(
            events_of(&[b"event: item\ndata: half", b"\n", b"\n"]),
            pairs(&[("item", "half")])
        );
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let body: &[u8] = b"5\r\nhello\r\n1;ext=1\r\n \r\nB\r\nworld\nagain\r\n0\r\n\r\n";
        for split in 0..body.len() {
            let mut chunked = Chunked::default();
            let mut out = Vec::new();
            for piece in [&body[..split], &body[split..]] {
                chunked
                    .feed(piece, |bytes| out.extend_from_slice(bytes))
                    .unwrap();
            }
            assert_eq!(out, b"hello world\nagain", "split at {split}");
            assert!(chunked.done());
        }
    }

    #[test]
    fn chunked_rejects_garbage() {
        let mut chunked = Chunked::default();
        assert!(chunked.feed(b"zz\r\n", |_| {}).is_err());
        let mut chunked = Chunked::default();
        assert!(chunked.feed(b"2\r\nabc\r\n", |_| {}).is_err());
    }

    #[test]
    fn publish_time_comes_from_the_item_attribute() {
        let item = br#"<article id="status-1" class="item status" data-cursor="42" data-published-ms="1700000000123" lang="en">"#;
        assert_eq!(published_ms(item), Some(1_700_000_000_123));
        assert_eq!(published_ms(b"<div data-published-ms=17>"), Some(17));
        assert_eq!(
            published_ms(br#"<div id="status-1" hx-swap-oob="delete"></div>"#),
            None
        );
        assert_eq!(published_ms(br#"data-published-ms="""#), None);
        assert_eq!(
            published_ms(br#"data-published-ms="99999999999999999999""#),
            None
        );
    }

    #[test]
    fn edits_and_deletions_give_no_delay() {
        let new = br#"<article id="status-1" class="item status" data-cursor="4" data-published-ms="1000">"#;
        let edit = br#"<article id="status-1" class="item status" data-cursor="9" data-published-ms="1000" hx-swap-oob="true">"#;
        let delete = br#"<div id="status-1" hx-swap-oob="delete"></div>"#;
        assert_eq!(new_item_published_ms(new), Some(1000));
        assert_eq!(new_item_published_ms(edit), None);
        assert_eq!(new_item_published_ms(delete), None);
    }

    #[test]
    fn delays_are_arrival_minus_publish_never_negative() {
        assert_eq!(delay_ms(1_000, 1_042), 42);
        assert_eq!(delay_ms(1_042, 1_000), 0);
    }
}

//! The wire reader and decoder against hand-made streams and the bundled sample.

use std::collections::HashSet;
use std::path::PathBuf;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard::mastodon::sanitize::sanitize_status_html;
use switchyard::mastodon::status::{DecodeError, StreamMessage};
use switchyard::mastodon::wire::{WireEvent, WireReader};

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/mastodon-sample.sse")
}

fn sample_bytes() -> Vec<u8> {
    match std::fs::read(sample_path()) {
        Ok(bytes) => bytes,
        Err(error) => panic!("reading the sample (run scripts/gen_replay.py): {error}"),
    }
}

fn event(name: &str, data: &str) -> WireEvent {
    WireEvent::Event {
        name: name.into(),
        data: data.into(),
    }
}

fn read_whole(bytes: &[u8]) -> Vec<WireEvent> {
    let mut reader = WireReader::new();
    let mut events = reader.feed(bytes);
    events.extend(reader.finish());
    events
}

fn read_split(bytes: &[u8], cuts: &[usize]) -> Vec<WireEvent> {
    let mut reader = WireReader::new();
    let mut events = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        events.extend(reader.feed(&bytes[start..cut]));
        start = cut;
    }
    events.extend(reader.feed(&bytes[start..]));
    events.extend(reader.finish());
    events
}

fn read_random_chunks(bytes: &[u8], seed: u64, max_chunk: usize) -> Vec<WireEvent> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cuts = Vec::new();
    let mut at = 0;
    loop {
        at += rng.random_range(1..=max_chunk);
        if at >= bytes.len() {
            break;
        }
        cuts.push(at);
    }
    read_split(bytes, &cuts)
}

/// A small stream with every awkward feature: BOM, three kinds of line end, multi-byte
/// characters of two, three and four bytes, comments inside and between events, fields
/// without the space, multi-line data, an unknown field and an `id:`.
const TRICKY: &[u8] =
    "\u{feff}:)\r\nevent: update\r\ndata: {\"content\":\"Καλημέρα 日本語 🦊\"}\r\n\r\n\
:thump\revent:delete\rdata:1099\r\rdata: first\ndata:  second\n: note\nid: 7\nretry: 5\n\
foo: bar\n\nevent: status.update\ndata: עברית العربية\n\n"
        .as_bytes();

fn tricky_expected() -> Vec<WireEvent> {
    vec![
        WireEvent::Comment(")".into()),
        event("update", "{\"content\":\"Καλημέρα 日本語 🦊\"}"),
        WireEvent::Comment("thump".into()),
        event("delete", "1099"),
        WireEvent::Comment("note".into()),
        event("message", "first\n second"),
        event("status.update", "עברית العربية"),
    ]
}

#[test]
fn tricky_stream_parses() {
    assert_eq!(read_whole(TRICKY), tricky_expected());
}

#[test]
fn every_split_position_gives_the_same_events() {
    let expected = tricky_expected();
    for cut in 0..=TRICKY.len() {
        assert_eq!(read_split(TRICKY, &[cut]), expected, "split at {cut}");
    }
    for first in 0..=TRICKY.len() {
        for second in (first..=TRICKY.len()).step_by(7) {
            assert_eq!(
                read_split(TRICKY, &[first, second]),
                expected,
                "{first}/{second}"
            );
        }
    }
    let every_byte: Vec<usize> = (1..TRICKY.len()).collect();
    assert_eq!(read_split(TRICKY, &every_byte), expected);
}

#[test]
fn random_chunks_of_the_sample_give_the_same_events() {
    let bytes = sample_bytes();
    let expected = read_whole(&bytes);
    for seed in 0..8 {
        let max_chunk = [1, 3, 17, 100, 1500, 4096, 65536, 7][seed as usize];
        assert_eq!(
            read_random_chunks(&bytes, seed, max_chunk),
            expected,
            "seed {seed}"
        );
    }
}

#[test]
fn crlf_and_cr_versions_of_the_sample_read_alike() {
    let bytes = sample_bytes();
    let expected = read_whole(&bytes);
    let text = String::from_utf8_lossy(&bytes);
    for ending in ["\r\n", "\r"] {
        let converted = text.replace('\n', ending).into_bytes();
        for seed in 0..3 {
            let got = read_random_chunks(&converted, 100 + seed, 2048);
            assert_eq!(got, expected, "{ending:?} seed {seed}");
        }
    }
}

#[test]
fn invalid_utf8_is_replaced_not_fatal() {
    let got = read_whole(b"event: update\ndata: caf\xC3\n\ndata: \xFF\xFEok\n\n");
    assert_eq!(
        got,
        vec![
            event("update", "caf\u{FFFD}"),
            event("message", "\u{FFFD}\u{FFFD}ok")
        ]
    );
}

#[test]
fn over_long_lines_are_dropped_and_reading_goes_on() {
    let mut reader = WireReader::with_max_line(64);
    let long = format!("event: update\ndata: {}\n\n", "x".repeat(200));
    let mut got = Vec::new();
    for chunk in long.as_bytes().chunks(10) {
        got.extend(reader.feed(chunk));
    }
    got.extend(reader.feed(b":thump\nevent: delete\ndata: 42\n\n"));
    assert_eq!(
        got,
        vec![WireEvent::Comment("thump".into()), event("delete", "42")]
    );
}

fn status_json(id: &str, edited: bool) -> String {
    let edited_at = if edited {
        "\"2025-03-14T10:00:00.000Z\""
    } else {
        "null"
    };
    format!(
        r#"{{"id":"{id}","created_at":"2025-03-14T09:00:00.000Z","edited_at":{edited_at},
        "in_reply_to_id":null,"sensitive":false,"spoiler_text":"","visibility":"public",
        "language":"en","uri":"https://example.com/users/ana/statuses/{id}",
        "url":"https://example.com/@ana/{id}","replies_count":0,"reblogs_count":1,
        "favourites_count":2,"content":"\u003cp\u003ehi\u003c/p\u003e","reblog":null,
        "account":{{"id":"1","username":"ana","acct":"ana","display_name":"Ana",
        "url":"https://example.com/@ana","avatar":"https://example.com/a.png"}},
        "media_attachments":[],"mentions":[],"tags":[],"emojis":[],"card":null,"poll":null}}"#
    )
    .replace('\n', "")
}

#[test]
fn decodes_update_status_update_delete_and_heartbeat() {
    let stream = format!(
        ":)\nevent: update\ndata: {}\n\nevent: status.update\ndata: {}\n\n\
         event: delete\ndata: 110\n\n:thump\nevent: filters_changed\ndata: undefined\n\n",
        status_json("110", false),
        status_json("110", true),
    );
    let messages: Vec<StreamMessage> = read_whole(stream.as_bytes())
        .into_iter()
        .filter_map(|ev| match StreamMessage::from_wire(ev) {
            Ok(message) => message,
            Err(error) => panic!("{error}"),
        })
        .collect();

    assert_eq!(messages.len(), 5);
    assert_eq!(messages[0], StreamMessage::Heartbeat);
    let StreamMessage::Update(status) = &messages[1] else {
        panic!("{:?}", messages[1]);
    };
    assert_eq!(status.content, "<p>hi</p>");
    assert_eq!(status.account.acct, "ana");
    assert_eq!(status.edited_at, None);
    let StreamMessage::StatusUpdate(edit) = &messages[2] else {
        panic!("{:?}", messages[2]);
    };
    assert_eq!(edit.id, "110");
    assert!(edit.edited_at.is_some());
    assert_eq!(messages[3], StreamMessage::Delete("110".into()));
    assert_eq!(messages[4], StreamMessage::Heartbeat);
}

#[test]
fn decode_errors_name_the_event() {
    let broken = StreamMessage::from_wire(event("update", "{\"id\":"));
    let Err(error @ DecodeError::Status { .. }) = broken else {
        panic!("{broken:?}");
    };
    assert!(error.to_string().contains("`update`"), "{error}");

    let bad_id = StreamMessage::from_wire(event("delete", "{\"id\":1}"));
    let Err(error @ DecodeError::DeleteId { .. }) = bad_id else {
        panic!("{bad_id:?}");
    };
    assert!(error.to_string().contains("`delete`"), "{error}");
}

#[test]
fn bundled_sample_decodes_cleanly_with_the_expected_mix() {
    let events = read_whole(&sample_bytes());
    let (mut updates, mut edits, mut deletes, mut beats) = (0, 0, 0, 0);
    let (mut boosts, mut warned, mut with_media, mut replies) = (0, 0, 0, 0);
    let mut posted = HashSet::new();
    let mut languages = HashSet::new();
    let mut previous_id = 0u64;

    for ev in events {
        let message = match StreamMessage::from_wire(ev.clone()) {
            Ok(Some(message)) => message,
            Ok(None) => panic!("unexpected event kind {ev:?}"),
            Err(error) => panic!("{error}"),
        };
        match message {
            StreamMessage::Update(status) => {
                updates += 1;
                let id: u64 = status.id.parse().unwrap_or(0);
                assert!(id > previous_id, "ids must grow: {id} after {previous_id}");
                previous_id = id;
                posted.insert(status.id.clone());
                boosts += usize::from(status.reblog.is_some());
                warned += usize::from(!status.spoiler_text.is_empty());
                let has_media = !status.media_attachments.is_empty();
                with_media += usize::from(status.sensitive && has_media);
                replies += usize::from(status.in_reply_to_id.is_some());
                languages.extend(status.language.clone());

                let clean = sanitize_status_html(&status.content).to_ascii_lowercase();
                for banned in [
                    "<script",
                    "onclick",
                    "onerror",
                    "javascript:",
                    "<iframe",
                    "style",
                ] {
                    assert!(!clean.contains(banned), "{banned} survived in {clean}");
                }
                for domain in [&status.account.url, &status.uri] {
                    assert!(
                        [
                            "https://example.com/",
                            "https://example.org/",
                            "https://example.net/"
                        ]
                        .iter()
                        .any(|prefix| domain.starts_with(prefix)),
                        "{domain}"
                    );
                }
            }
            StreamMessage::StatusUpdate(status) => {
                edits += 1;
                assert!(posted.contains(&status.id), "edit of unseen {}", status.id);
                assert!(status.edited_at.is_some());
            }
            StreamMessage::Delete(id) => {
                deletes += 1;
                assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
            }
            StreamMessage::Heartbeat => beats += 1,
        }
    }

    assert!(
        updates + edits + deletes >= 400,
        "{updates} {edits} {deletes}"
    );
    assert!(updates >= 300 && edits >= 10 && deletes >= 20 && beats >= 30);
    assert!(boosts >= 10 && warned >= 5 && with_media >= 3 && replies >= 10);
    for language in ["en", "ja", "el", "ru", "hi", "ar", "he"] {
        assert!(languages.contains(language), "no {language} status");
    }
}

#[test]
fn sample_holds_html_that_needs_sanitizing() {
    let text = String::from_utf8_lossy(&sample_bytes()).into_owned();
    assert!(text.contains("\\u003cscript\\u003e"));
    assert!(text.contains("onclick="));
    assert!(text.contains("javascript:"));
}

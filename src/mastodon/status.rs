//! The Status entity and the stream messages that carry it.
//!
//! Field names follow Mastodon's REST entities so real payloads deserialize as they are.
//! Instances and forks differ in what they send, so every field but the identifying ones is
//! optional on the way in, `null` reads as the field's default, and unknown fields are
//! ignored: one odd status must not stop a mirror that reads thousands an hour.

use serde::{Deserialize, Deserializer, Serialize};

use super::wire::WireEvent;

/// Reads `null` or a missing value as `T::default()`.
///
/// Mastodon never sends `null` for these fields, but other servers speaking the same API do.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A status (a post) as the REST and streaming APIs render it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub id: String,
    /// RFC 3339 timestamp, kept as the instance wrote it.
    pub created_at: String,
    #[serde(default)]
    pub edited_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub uri: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub in_reply_to_id: Option<String>,
    #[serde(default)]
    pub in_reply_to_account_id: Option<String>,
    /// Untrusted HTML; render only what `sanitize_status_html` returns.
    #[serde(default, deserialize_with = "null_as_default")]
    pub content: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub spoiler_text: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub sensitive: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    pub visibility: String,
    #[serde(default)]
    pub language: Option<String>,
    pub account: Account,
    #[serde(default, deserialize_with = "null_as_default")]
    pub media_attachments: Vec<MediaAttachment>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub mentions: Vec<Mention>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub tags: Vec<Tag>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub emojis: Vec<CustomEmoji>,
    /// The boosted status when this one is a boost; its own content is then empty.
    #[serde(default)]
    pub reblog: Option<Box<Status>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub replies_count: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub reblogs_count: u64,
    #[serde(default, deserialize_with = "null_as_default")]
    pub favourites_count: u64,
}

/// The author of a status.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub username: String,
    /// `username` for local accounts, `username@domain` for remote ones.
    #[serde(default, deserialize_with = "null_as_default")]
    pub acct: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub display_name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub avatar: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub avatar_static: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub bot: bool,
    /// Custom emoji used in the display name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub emojis: Vec<CustomEmoji>,
}

/// An image, video, audio or other file attached to a status.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MediaAttachment {
    pub id: String,
    /// `image`, `gifv`, `video`, `audio` or `unknown`.
    #[serde(rename = "type", default, deserialize_with = "null_as_default")]
    pub kind: String,
    /// Null for remote media the instance has not fetched.
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub preview_url: Option<String>,
    #[serde(default)]
    pub remote_url: Option<String>,
    /// Alt text.
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub blurhash: Option<String>,
}

/// An account mentioned in a status.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Mention {
    pub id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub username: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub acct: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
}

/// A hashtag used in a status.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
}

/// A custom emoji, written `:shortcode:` in content and display names.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CustomEmoji {
    pub shortcode: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub url: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub static_url: String,
    #[serde(default = "default_true", deserialize_with = "null_as_true")]
    pub visible_in_picker: bool,
}

fn default_true() -> bool {
    true
}

fn null_as_true<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(deserializer)?.unwrap_or(true))
}

/// What the public stream tells a mirror.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamMessage {
    /// `update`: a new status.
    Update(Status),
    /// `status.update`: a status was edited; replaces the stored one with the same id.
    StatusUpdate(Status),
    /// `delete`: the id of a status that no longer exists.
    Delete(String),
    /// A comment line; proof the connection is alive.
    Heartbeat,
}

/// Why a wire event could not become a [`StreamMessage`].
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("the `{event}` event does not carry a valid status: {source}")]
    Status {
        event: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the `delete` event carries {data:?}, which is not a status id")]
    DeleteId { data: String },
}

/// Longest id accepted from a `delete` event; snowflake ids are 18 or 19 digits.
const MAX_ID_LEN: usize = 64;

impl StreamMessage {
    /// Interprets one wire event.
    ///
    /// Events a public-timeline mirror has no use for (`notification`, `conversation`,
    /// `filters_changed`, `announcement`, ...) give `Ok(None)` rather than an error, since
    /// servers add new kinds over time.
    pub fn from_wire(ev: WireEvent) -> Result<Option<StreamMessage>, DecodeError> {
        let (name, data) = match ev {
            WireEvent::Comment(_) => return Ok(Some(StreamMessage::Heartbeat)),
            WireEvent::Event { name, data } => (name, data),
        };

        match name.as_str() {
            "update" => decode_status(&name, &data).map(|s| Some(StreamMessage::Update(s))),
            "status.update" => {
                decode_status(&name, &data).map(|s| Some(StreamMessage::StatusUpdate(s)))
            }
            "delete" => decode_delete_id(data).map(|id| Some(StreamMessage::Delete(id))),
            _ => Ok(None),
        }
    }
}

fn decode_status(event: &str, data: &str) -> Result<Status, DecodeError> {
    serde_json::from_str(data).map_err(|source| DecodeError::Status {
        event: event.to_owned(),
        source,
    })
}

/// Reads the id of a `delete` event.
///
/// Mastodon sends the bare id; some relays quote it as a JSON string, which is accepted too.
/// The API documents ids as strings that are "not guaranteed to be a number", so ASCII
/// letters, digits, `-` and `_` pass, while anything that could smuggle markup or whitespace
/// into a lookup does not.
fn decode_delete_id(data: String) -> Result<String, DecodeError> {
    let trimmed = data.trim();
    let id = trimmed
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap_or(trimmed);

    let valid = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');

    if valid {
        Ok(id.to_owned())
    } else {
        Err(DecodeError::DeleteId { data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, data: &str) -> WireEvent {
        WireEvent::Event {
            name: name.into(),
            data: data.into(),
        }
    }

    #[test]
    fn minimal_status_parses_with_defaults() {
        let json = r#"{"id":"1","created_at":"2024-01-01T00:00:00.000Z",
            "account":{"id":"9","username":"a","acct":"a","display_name":null},
            "spoiler_text":null,"tags":null,"unknown":{"x":1}}"#;
        let msg = StreamMessage::from_wire(event("update", json));
        let Ok(Some(StreamMessage::Update(status))) = msg else {
            panic!("unexpected {msg:?}");
        };
        assert_eq!(status.id, "1");
        assert_eq!(status.account.display_name, "");
        assert!(status.tags.is_empty());
        assert!(status.reblog.is_none());
        assert_eq!(status.favourites_count, 0);
    }

    #[test]
    fn delete_ids() {
        let ok = |data: &str| match StreamMessage::from_wire(event("delete", data)) {
            Ok(Some(StreamMessage::Delete(id))) => id,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(ok("109876543210987654"), "109876543210987654");
        assert_eq!(ok("\"42\""), "42");

        for bad in ["", "1 2", "<b>", "\"\"", &"9".repeat(65)] {
            let err = StreamMessage::from_wire(event("delete", bad));
            assert!(matches!(err, Err(DecodeError::DeleteId { .. })), "{bad:?}");
        }
    }

    #[test]
    fn errors_name_the_event() {
        let Err(err) = StreamMessage::from_wire(event("status.update", "{")) else {
            panic!("broken JSON decoded");
        };
        assert!(err.to_string().contains("`status.update`"), "{err}");
    }

    #[test]
    fn other_events_and_comments() {
        let none = StreamMessage::from_wire(event("notification", "{}"));
        assert!(matches!(none, Ok(None)));
        let beat = StreamMessage::from_wire(WireEvent::Comment("thump".into()));
        assert!(matches!(beat, Ok(Some(StreamMessage::Heartbeat))));
    }
}

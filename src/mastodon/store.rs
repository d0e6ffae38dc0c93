//! Mirrored statuses in the database.
//!
//! Each change (new, edited, deleted) takes the next `seq`, the mirror's cursor, so a
//! poller asking for changes after its cursor learns of edits and deletes as well as
//! new statuses. Only the sanitized form is stored: what comes from strangers is
//! cleaned once, before anyone can be shown it.

use serde::{Deserialize, Serialize};

use super::sanitize::sanitize_status_html;
use super::status::Status;
use crate::db::{Db, Tx, now_ms};

/// The key of the advisory lock that orders `seq` on PostgreSQL.
const STATUSES_SEQUENCE: i64 = 0x5357_0002;

/// A status as stored and shown: sanitized, boosts unwrapped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredStatus {
    pub id: String,
    pub url: Option<String>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub author_name: String,
    pub author_acct: String,
    pub author_url: String,
    /// Sanitized HTML.
    pub content_html: String,
    pub spoiler_text: String,
    pub sensitive: bool,
    pub language: Option<String>,
    pub media: Vec<StoredMedia>,
    /// The account that boosted it, when this is a boost.
    pub boosted_by: Option<String>,
    pub replies: u64,
    pub boosts: u64,
    pub favourites: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMedia {
    pub kind: String,
    pub url: Option<String>,
    pub description: Option<String>,
}

impl StoredStatus {
    /// The stored form of a status from the stream. A boost keeps the booster's id
    /// (deletes and edits name it) and shows the boosted status.
    pub fn from_status(status: &Status) -> StoredStatus {
        let (shown, boosted_by) = match &status.reblog {
            Some(inner) => (inner.as_ref(), Some(status.account.acct.clone())),
            None => (status, None),
        };
        StoredStatus {
            id: status.id.clone(),
            url: web_link(shown.url.as_deref()).or_else(|| web_link(Some(&shown.uri))),
            created_at: shown.created_at.clone(),
            edited_at: shown.edited_at.clone(),
            author_name: shown.account.display_name.clone(),
            author_acct: shown.account.acct.clone(),
            author_url: web_link(Some(&shown.account.url)).unwrap_or_default(),
            content_html: sanitize_status_html(&shown.content),
            spoiler_text: shown.spoiler_text.clone(),
            sensitive: shown.sensitive,
            language: shown.language.clone(),
            media: shown
                .media_attachments
                .iter()
                .map(|m| StoredMedia {
                    kind: m.kind.clone(),
                    url: web_link(m.url.as_deref()).or_else(|| web_link(m.remote_url.as_deref())),
                    description: m.description.clone(),
                })
                .collect(),
            boosted_by,
            replies: shown.replies_count,
            boosts: shown.reblogs_count,
            favourites: shown.favourites_count,
        }
    }
}

/// A link from a stranger's status, if it is an http(s) address: anything else
/// (`javascript:`, `data:`) would run or render in our page when clicked.
fn web_link(url: Option<&str>) -> Option<String> {
    let url = url?.trim();
    let scheme = url.split_once("://")?.0;
    (scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http"))
        .then(|| url.to_owned())
}

/// One row of the change log as a view needs it.
#[derive(Clone, Debug)]
pub struct Change {
    pub seq: u64,
    /// Whether the client at `after` has never seen this status.
    pub first_seq: u64,
    pub status_id: String,
    /// `None` for a deleted status.
    pub status: Option<StoredStatus>,
    pub received_ms: i64,
}

type Row = (i64, i64, String, i64, String, i64);

fn change((seq, first_seq, status_id, deleted, body, received_ms): Row) -> Change {
    let status = if deleted != 0 {
        None
    } else {
        match serde_json::from_str(&body) {
            Ok(status) => Some(status),
            Err(error) => {
                tracing::warn!(%status_id, %error, "stored status unreadable");
                None
            }
        }
    };
    Change {
        seq: seq.max(0) as u64,
        first_seq: first_seq.max(0) as u64,
        status_id,
        status,
        received_ms,
    }
}

/// The newest `seq`.
pub async fn head(db: &Db) -> sqlx::Result<u64> {
    let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) FROM statuses")
        .fetch_one(&db.pool)
        .await?;
    Ok(head.max(0) as u64)
}

async fn next_seq(db: &Db, tx: &mut Tx) -> sqlx::Result<i64> {
    db.lock_sequence(tx, STATUSES_SEQUENCE).await?;
    let (seq,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0) + 1 FROM statuses")
        .fetch_one(&mut **tx)
        .await?;
    Ok(seq)
}

/// Stores a new status; `None` when it is already stored (a replay or a repeat).
pub async fn insert(db: &Db, status: &StoredStatus) -> sqlx::Result<Option<Change>> {
    let body = serde_json::to_string(status).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let received_ms = now_ms();
    let mut tx = db.begin().await?;
    let seq = next_seq(db, &mut tx).await?;
    let inserted = sqlx::query(
        "INSERT INTO statuses (seq, first_seq, status_id, deleted, body, received_ms) \
         VALUES ($1, $1, $2, 0, $3, $4) ON CONFLICT (status_id) DO NOTHING",
    )
    .bind(seq)
    .bind(&status.id)
    .bind(&body)
    .bind(received_ms)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    tx.commit().await?;

    Ok((inserted == 1).then(|| Change {
        seq: seq as u64,
        first_seq: seq as u64,
        status_id: status.id.clone(),
        status: Some(status.clone()),
        received_ms,
    }))
}

/// Replaces an edited status; `None` when it is unknown or deleted.
pub async fn update(db: &Db, status: &StoredStatus) -> sqlx::Result<Option<Change>> {
    let body = serde_json::to_string(status).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let mut tx = db.begin().await?;
    let seq = next_seq(db, &mut tx).await?;
    let row: Option<Row> = sqlx::query_as(
        "UPDATE statuses SET seq = $1, body = $2 WHERE status_id = $3 AND deleted = 0 \
         RETURNING seq, first_seq, status_id, deleted, body, received_ms",
    )
    .bind(seq)
    .bind(&body)
    .bind(&status.id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(change))
}

/// Marks a status deleted, keeping a tombstone so pollers learn of it.
pub async fn delete(db: &Db, status_id: &str) -> sqlx::Result<Option<Change>> {
    let mut tx = db.begin().await?;
    let seq = next_seq(db, &mut tx).await?;
    let row: Option<Row> = sqlx::query_as(
        "UPDATE statuses SET seq = $1, deleted = 1, body = '' \
         WHERE status_id = $2 AND deleted = 0 \
         RETURNING seq, first_seq, status_id, deleted, body, received_ms",
    )
    .bind(seq)
    .bind(status_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(row.map(change))
}

/// Changes with `seq` in `(after, upto]`, newest first, at most `limit`.
pub async fn changes_between(
    db: &Db,
    after: u64,
    upto: u64,
    limit: i64,
) -> sqlx::Result<Vec<Change>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, first_seq, status_id, deleted, body, received_ms FROM statuses \
         WHERE seq > $1 AND seq <= $2 ORDER BY seq DESC LIMIT $3",
    )
    .bind(after as i64)
    .bind(upto as i64)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(change).collect())
}

/// The newest statuses still shown (not deleted) at or below `upto`, newest first.
pub async fn latest(db: &Db, upto: u64, limit: i64) -> sqlx::Result<Vec<Change>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, first_seq, status_id, deleted, body, received_ms FROM statuses \
         WHERE deleted = 0 AND seq <= $1 ORDER BY first_seq DESC LIMIT $2",
    )
    .bind(upto as i64)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(change).collect())
}

/// Keeps the newest `keep` rows and deletes the rest; returns how many went.
pub async fn prune(db: &Db, keep: i64) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "DELETE FROM statuses WHERE seq < \
         (SELECT seq FROM statuses ORDER BY seq DESC LIMIT 1 OFFSET $1)",
    )
    .bind(keep.max(1) - 1)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::web_link;

    #[test]
    fn only_web_links_survive() {
        assert_eq!(
            web_link(Some("https://example.com/@a")).as_deref(),
            Some("https://example.com/@a")
        );
        assert_eq!(
            web_link(Some("HTTP://example.com")).as_deref(),
            Some("HTTP://example.com")
        );
        for bad in [
            "javascript:alert(1)",
            "JavaScript://%0aalert(1)",
            "data:text/html,x",
            "/relative",
            "",
        ] {
            assert_eq!(web_link(Some(bad)), None, "{bad}");
        }
    }
}

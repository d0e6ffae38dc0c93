//! SQL for posts and mentions.

use sqlx::{AnyConnection, Connection};

use crate::db::{Db, SequenceLock};

/// The key of the advisory lock that orders post ids on PostgreSQL.
const POSTS_SEQUENCE: i64 = 0x5357_0001;

/// A post as the feeds show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostRow {
    pub id: i64,
    pub author: String,
    pub body: String,
    pub created_ms: i64,
}

type Row = (i64, String, String, i64);

fn post((id, author, body, created_ms): Row) -> PostRow {
    PostRow {
        id,
        author,
        body,
        created_ms,
    }
}

/// The newest post id: the cursor of a feed that has shown everything.
pub async fn head(db: &Db) -> sqlx::Result<u64> {
    let (head,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM posts")
        .fetch_one(&db.pool)
        .await?;
    Ok(head.max(0) as u64)
}

/// Waits for the right to number and publish the next post.
pub async fn writer_lock(db: &Db) -> sqlx::Result<SequenceLock> {
    db.lock_sequence_session(POSTS_SEQUENCE).await
}

/// Inserts a post and its mentions in one transaction, on a connection that holds the
/// posts sequence's writer lock (see [`writer_lock`]).
pub async fn create(
    conn: &mut AnyConnection,
    author_id: i64,
    body: &str,
    created_ms: i64,
    mentioned: &[i64],
) -> sqlx::Result<i64> {
    let mut tx = conn.begin().await?;

    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO posts (author_id, body, created_ms) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(author_id)
    .bind(body)
    .bind(created_ms)
    .fetch_one(&mut *tx)
    .await?;

    for user_id in mentioned {
        sqlx::query("INSERT INTO mentions (user_id, post_id) VALUES ($1, $2)")
            .bind(user_id)
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }

    tx.commit().await?;
    Ok(id)
}

/// Everyone's posts with ids in `(after, upto]`, newest first, at most `limit`.
pub async fn all_between(db: &Db, after: u64, upto: u64, limit: i64) -> sqlx::Result<Vec<PostRow>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.id, u.handle, p.body, p.created_ms FROM posts p \
         JOIN users u ON u.id = p.author_id \
         WHERE p.id > $1 AND p.id <= $2 ORDER BY p.id DESC LIMIT $3",
    )
    .bind(after as i64)
    .bind(upto as i64)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(post).collect())
}

/// Posts mentioning `user_id` with ids in `(after, upto]`, newest first.
pub async fn mentions_between(
    db: &Db,
    user_id: i64,
    after: u64,
    upto: u64,
    limit: i64,
) -> sqlx::Result<Vec<PostRow>> {
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT p.id, u.handle, p.body, p.created_ms FROM mentions m \
         JOIN posts p ON p.id = m.post_id JOIN users u ON u.id = p.author_id \
         WHERE m.user_id = $1 AND m.post_id > $2 AND m.post_id <= $3 \
         ORDER BY m.post_id DESC LIMIT $4",
    )
    .bind(user_id)
    .bind(after as i64)
    .bind(upto as i64)
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows.into_iter().map(post).collect())
}

//! SQL for accounts.

use crate::db::{Db, now_ms};

/// A logged-in user as handlers see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub handle: String,
}

pub async fn by_id(db: &Db, id: i64) -> sqlx::Result<Option<User>> {
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT id, email, handle FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&db.pool)
            .await?;
    Ok(row.map(|(id, email, handle)| User { id, email, handle }))
}

/// The user and password hash for a log-in name, which may be an email or a handle.
pub async fn credentials(db: &Db, login: &str) -> sqlx::Result<Option<(User, String)>> {
    let row: Option<(i64, String, String, String)> = sqlx::query_as(
        "SELECT id, email, handle, password_hash FROM users WHERE email = $1 OR handle = $1",
    )
    .bind(login)
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.map(|(id, email, handle, hash)| (User { id, email, handle }, hash)))
}

/// Which of email and handle are taken already.
pub async fn taken(db: &Db, email: &str, handle: &str) -> sqlx::Result<(bool, bool)> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT email, handle FROM users WHERE email = $1 OR handle = $2")
            .bind(email)
            .bind(handle)
            .fetch_all(&db.pool)
            .await?;
    Ok((
        rows.iter().any(|(e, _)| e == email),
        rows.iter().any(|(_, h)| h == handle),
    ))
}

/// Inserts a user; `Ok(None)` when the email or handle was taken meanwhile.
pub async fn create(
    db: &Db,
    email: &str,
    handle: &str,
    password_hash: &str,
) -> sqlx::Result<Option<User>> {
    let inserted: Result<(i64,), sqlx::Error> = sqlx::query_as(
        "INSERT INTO users (email, handle, password_hash, created_ms) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(email)
    .bind(handle)
    .bind(password_hash)
    .bind(now_ms())
    .fetch_one(&db.pool)
    .await;

    match inserted {
        Ok((id,)) => Ok(Some(User {
            id,
            email: email.to_owned(),
            handle: handle.to_owned(),
        })),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(None),
        Err(error) => Err(error),
    }
}

/// Users by handle or by email, for resolving mentions.
pub async fn resolve(db: &Db, handles: &[String], emails: &[String]) -> sqlx::Result<Vec<User>> {
    let mut users = Vec::new();
    // A post names a handful of people; a query each keeps the SQL portable.
    for handle in handles {
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, email, handle FROM users WHERE handle = $1")
                .bind(handle)
                .fetch_optional(&db.pool)
                .await?;
        users.extend(row.map(|(id, email, handle)| User { id, email, handle }));
    }
    for email in emails {
        let row: Option<(i64, String, String)> =
            sqlx::query_as("SELECT id, email, handle FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(&db.pool)
                .await?;
        users.extend(row.map(|(id, email, handle)| User { id, email, handle }));
    }
    users.sort_by_key(|u| u.id);
    users.dedup_by_key(|u| u.id);
    Ok(users)
}

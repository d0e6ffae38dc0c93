//! Password hashing with argon2id, kept off the async executor: one hash costs tens of
//! milliseconds of CPU, which would stall every other connection on that worker.

use std::sync::LazyLock;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;

use crate::error::AppError;

/// A password as typed; never printed.
pub struct Password(String);

impl Password {
    pub fn new(text: String) -> Self {
        Password(text)
    }

    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password([redacted])")
    }
}

/// Hashes at once. Each argon2id run holds about 19 MiB for its duration; unbounded,
/// a burst of log-ins (or of wrong passwords) would take memory by the gigabyte, and
/// the allocator keeps it afterwards. More than the cores would only queue for CPU.
static HASHING: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Semaphore::new(cores)
});

/// Runs one hashing job under the [`HASHING`] limit, off the async executor.
async fn limited<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let _permit = HASHING
        .acquire()
        .await
        .map_err(|e| AppError::from(anyhow::anyhow!("hashing limit: {e}")))?;
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| AppError::from(anyhow::anyhow!("password hashing task: {e}")))
}

/// The PHC string of a new argon2id hash of `password`.
pub async fn hash(password: Password) -> Result<String, AppError> {
    limited(move || {
        Argon2::default()
            .hash_password(password.0.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await?
    .map_err(AppError::from)
}

/// Whether `password` matches `phc`. A malformed stored hash counts as no match.
pub async fn verify(password: Password, phc: String) -> Result<bool, AppError> {
    limited(move || {
        Argon2::default()
            .verify_password(password.0.as_bytes(), phc.as_str())
            .is_ok()
    })
    .await
}

/// Spends the time of a password check and fails, for log-in names with no account,
/// so that a wrong handle takes as long as a wrong password and does not reveal
/// which accounts exist.
pub async fn verify_nobody(password: Password) -> Result<bool, AppError> {
    static DECOY: LazyLock<String> = LazyLock::new(|| {
        Argon2::default()
            .hash_password(b"no account has this password")
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    });
    limited(move || {
        let _ = Argon2::default().verify_password(password.0.as_bytes(), DECOY.as_str());
        false
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let first = hash(Password::new("correct horse".into())).await.unwrap();
        let second = hash(Password::new("correct horse".into())).await.unwrap();
        assert!(first.starts_with("$argon2id$"));
        assert_ne!(first, second);

        assert!(
            verify(Password::new("correct horse".into()), first.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify(Password::new("wrong horse".into()), first)
                .await
                .unwrap()
        );
        assert!(
            !verify(Password::new("x".into()), "not a hash".into())
                .await
                .unwrap()
        );
        assert!(!verify_nobody(Password::new("x".into())).await.unwrap());
    }
}

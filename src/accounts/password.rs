//! Password hashing with argon2id, on threads of its own: one hash costs tens of
//! milliseconds of CPU, which would stall every other connection on an executor thread.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, mpsc};

use argon2::{Argon2, PasswordHasher, PasswordVerifier};

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

/// Threads that hash. Each argon2id run holds about 19 MiB; the allocator keeps that
/// memory for the thread that used it, so hashing on the shared blocking pool (which
/// grows to many threads) left a retained block on each of them: about 200 MiB after
/// a dozen sign-ups. A fixed thread per core bounds it to one block per core, and more
/// threads than cores would only queue for CPU anyway. Jobs wait in the queue.
static HASHERS: LazyLock<Mutex<mpsc::Sender<Job>>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let (jobs, queue) = mpsc::channel::<Job>();
    let queue = Arc::new(Mutex::new(queue));
    for n in 0..cores {
        let queue = queue.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("argon2-{n}"))
            .spawn(move || {
                loop {
                    let job = queue.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    match job {
                        // A panicking job fails its own request, not the thread.
                        Ok(job) => drop(std::panic::catch_unwind(AssertUnwindSafe(job))),
                        Err(_) => return,
                    }
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "starting a password hashing thread failed");
        }
    }
    Mutex::new(jobs)
});

type Job = Box<dyn FnOnce() + Send>;

/// Runs one hashing job on the [`HASHERS`] threads.
async fn limited<T: Send + 'static>(
    job: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    let (done, result) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let _ = done.send(job());
    });
    HASHERS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send(job)
        .map_err(|_| AppError::from(anyhow::anyhow!("no password hashing thread runs")))?;
    result
        .await
        .map_err(|e| AppError::from(anyhow::anyhow!("password hashing job: {e}")))
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

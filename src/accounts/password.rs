//! Password hashing with argon2id, on threads of its own: one hash costs tens of
//! milliseconds of CPU, which would stall every other connection on an executor thread.

use std::cell::RefCell;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, mpsc};

use argon2::password_hash::phc::{Output, ParamsString, Salt};
use argon2::{Algorithm, Argon2, Block, Params, PasswordHash, Version};

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
    limited(move || new_hash(password.0.as_bytes()))
        .await?
        .map_err(AppError::from)
}

/// Whether `password` matches `phc`. A malformed stored hash counts as no match.
pub async fn verify(password: Password, phc: String) -> Result<bool, AppError> {
    limited(move || matches(password.0.as_bytes(), &phc)).await
}

/// Spends the time of a password check and fails, for log-in names with no account,
/// so that a wrong handle takes as long as a wrong password and does not reveal
/// which accounts exist.
pub async fn verify_nobody(password: Password) -> Result<bool, AppError> {
    static DECOY: LazyLock<String> =
        LazyLock::new(|| new_hash(b"no account has this password").unwrap_or_default());
    limited(move || {
        let _ = matches(password.0.as_bytes(), DECOY.as_str());
        false
    })
    .await
}

thread_local! {
    /// This hashing thread's argon2 memory, allocated at its first hash and reused: a
    /// fresh 19 MiB block per hash is what the allocator used to keep.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// The most memory a stored hash may ask for (1 KiB blocks); a row asking for more is
/// damaged or hostile, and counts as no match.
const MAX_BLOCKS: usize = 256 * 1024;

/// argon2 of `password` and `salt` into `out`, in this thread's [`MEMORY`].
fn argon2_into(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    input: (&[u8], &[u8]),
    out: &mut [u8],
) -> anyhow::Result<()> {
    let blocks = params.block_count();
    if blocks > MAX_BLOCKS {
        anyhow::bail!("a password hash asks for {blocks} KiB of memory");
    }
    MEMORY.with_borrow_mut(|memory| {
        if memory.len() < blocks {
            memory.resize(blocks, Block::new());
        }
        let (password, salt) = input;
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
}

/// A new argon2id hash with a random salt and the default (OWASP) parameters.
fn new_hash(password: &[u8]) -> anyhow::Result<String> {
    let salt = argon2::password_hash::generate_salt();
    let params = Params::default();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let (algorithm, version) = (Algorithm::Argon2id, Version::V0x13);
    argon2_into(
        algorithm,
        version,
        params.clone(),
        (password, &salt),
        &mut out,
    )?;
    let phc = PasswordHash {
        algorithm: algorithm.ident(),
        version: Some(version.into()),
        params: ParamsString::try_from(&params)?,
        salt: Some(Salt::new(&salt)?),
        hash: Some(Output::new(&out)?),
    };
    Ok(phc.to_string())
}

/// Whether `password` hashes to the stored PHC string, with the string's own algorithm,
/// version, parameters and salt.
fn matches(password: &[u8], phc: &str) -> bool {
    let check = || -> anyhow::Result<bool> {
        let stored = PasswordHash::new(phc)?;
        let (Some(salt), Some(expected)) = (&stored.salt, &stored.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(stored.algorithm.as_str())?;
        let version = stored.version.map(Version::try_from).transpose()?;
        let params = Params::try_from(&stored)?;
        let mut out = vec![0u8; expected.len()];
        argon2_into(
            algorithm,
            version.unwrap_or_default(),
            params,
            (password, salt.as_ref()),
            &mut out,
        )?;
        // Output compares in constant time.
        Ok(Output::new(&out)? == *expected)
    };
    check().unwrap_or(false)
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

    /// Hashes stored before the memory was reused came from the library's own hasher;
    /// they must still verify, and ours must verify with the library.
    #[tokio::test]
    async fn hashes_agree_with_the_library() {
        use argon2::{PasswordHasher, PasswordVerifier};

        let theirs = Argon2::default()
            .hash_password(b"correct horse")
            .unwrap()
            .to_string();
        assert!(
            verify(Password::new("correct horse".into()), theirs.clone())
                .await
                .unwrap()
        );
        assert!(
            !verify(Password::new("correct hose".into()), theirs)
                .await
                .unwrap()
        );

        let ours = hash(Password::new("correct horse".into())).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"correct hose", &parsed)
                .is_err()
        );
    }

    #[test]
    fn a_stored_hash_asking_for_too_much_memory_is_refused_before_allocating() {
        let params = Params::new(300 * 1024, 1, 1, None).unwrap();
        let mut out = [0u8; 32];
        let refused = argon2_into(
            Algorithm::Argon2id,
            Version::V0x13,
            params,
            (b"x", b"saltsaltsalt"),
            &mut out,
        );
        let message = refused.unwrap_err().to_string();
        assert!(message.contains("asks for 307200 KiB"), "{message}");
        assert!(MEMORY.with_borrow(Vec::is_empty), "nothing was allocated");
    }
}

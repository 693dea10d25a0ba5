//! The SQLite file's checkpoints, off the writers' path. SQLite's own automatic
//! checkpoint runs inside the commit that crosses its threshold (1,000 WAL pages), and
//! that commit's senders wait while the pages are copied and synced: 5.6 % of a durable
//! send's CPU, and raising the threshold to copy less often made that one commit wait
//! 40 ms. Here a thread of its own copies whatever the WAL holds every [`EVERY`],
//! passively: it never waits for a writer or a reader, and it takes no write lock.
//! Copying every 100 ms copies less, too: the pages group commits touch are mostly the
//! same few (the ends of the messages, log and search indexes), each copied once per
//! checkpoint however many commits changed it.

use std::path::PathBuf;
use std::sync::Weak;
use std::time::Duration;

/// How often the thread checkpoints.
const EVERY: Duration = Duration::from_millis(100);

/// WAL pages after which a writer checkpoints anyway, should this thread fall behind
/// (SQLite's default is 1,000: 4 MiB).
pub const FALLBACK_PAGES: u32 = 20_000;

/// Checkpoints `file` until `alive` is gone (the store closed or dropped).
pub fn spawn<T: Send + Sync + 'static>(file: PathBuf, alive: Weak<T>) {
    let spawned = std::thread::Builder::new().name("sqlite-checkpoint".into()).spawn(move || {
        let conn = match open(&file) {
            Ok(conn) => conn,
            Err(error) => {
                // The writers' own checkpoints (`FALLBACK_PAGES`) still bound the WAL.
                tracing::warn!(%error, "could not open a connection for checkpoints");
                return;
            }
        };
        while alive.strong_count() > 0 {
            std::thread::sleep(EVERY);
            if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                tracing::warn!(%error, "checkpoint failed; trying again");
            }
        }
    });
    if let Err(error) = spawned {
        tracing::warn!(%error, "could not start the checkpoint thread");
    }
}

fn open(file: &PathBuf) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(file)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // As the writers: the WAL is synced at each checkpoint.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
}

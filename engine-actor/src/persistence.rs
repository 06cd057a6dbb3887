//! Forkchoice state on disk: written atomically (temp file, fsync, rename) after every change,
//! reloaded when the writer (re)starts.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use alloy_primitives::B256;
use engine_types::EngineError;
use serde::{Deserialize, Serialize};

/// Head, safe and finalized as the engine last told the EL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ForkchoiceSnapshot {
    /// Head block hash (zero: not initialised).
    pub head: B256,
    /// Head block number.
    pub head_number: u64,
    /// Head block timestamp.
    pub head_timestamp: u64,
    /// Safe block hash (zero: none).
    pub safe: B256,
    /// Finalized block hash (zero: none).
    pub finalized: B256,
    /// Finalized block number (0 when none).
    pub finalized_number: u64,
    /// Next withdrawal index to use: one past the last withdrawal of the committed chain
    /// (advanced by commits, not builds).
    pub next_withdrawal_index: u64,
}

impl ForkchoiceSnapshot {
    /// Whether a head is known.
    pub fn is_initialized(&self) -> bool {
        !self.head.is_zero()
    }

    /// Read the snapshot a state file holds; `Ok(None)` if there is no file yet.
    pub fn load(path: &Path) -> Result<Option<Self>, EngineError> {
        load(path)
    }

    /// Write this snapshot to `path` atomically (temp file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), EngineError> {
        save(path, self)
    }
}

/// Write `snapshot` to `path` atomically.
pub(crate) fn save(path: &Path, snapshot: &ForkchoiceSnapshot) -> Result<(), EngineError> {
    let fail = |what: &str, e: std::io::Error| {
        EngineError::config(
            "state_path",
            format!(
                "cannot {what} {}: {e}; check the directory exists and is writable",
                path.display()
            ),
        )
    };
    let json = serde_json::to_vec_pretty(snapshot)
        .map_err(|e| EngineError::config("state_path", format!("cannot encode state: {e}")))?;
    let tmp = temp_path(path);
    let mut file = std::fs::File::create(&tmp).map_err(|e| fail("create", e))?;
    file.write_all(&json).map_err(|e| fail("write", e))?;
    file.sync_all().map_err(|e| fail("fsync", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| fail("rename into", e))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Read the snapshot at `path`; `Ok(None)` if there is none yet.
pub(crate) fn load(path: &Path) -> Result<Option<ForkchoiceSnapshot>, EngineError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            EngineError::config(
                "state_path",
                format!(
                    "{} is not a forkchoice state file ({e}); move it aside to start from the EL's head",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EngineError::config("state_path", format!("cannot read {}: {e}", path.display()))),
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forkchoice.json");
        assert_eq!(load(&path).unwrap(), None);
        let snap = ForkchoiceSnapshot {
            head: B256::repeat_byte(1),
            head_number: 7,
            head_timestamp: 14,
            safe: B256::repeat_byte(2),
            finalized: B256::repeat_byte(2),
            finalized_number: 5,
            next_withdrawal_index: 9,
        };
        save(&path, &snap).unwrap();
        assert_eq!(load(&path).unwrap(), Some(snap));
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forkchoice.json");
        std::fs::write(&path, "not json").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(
            err.contains("not a forkchoice state file") && err.contains("forkchoice.json"),
            "{err}"
        );
    }
}

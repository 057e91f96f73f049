//! Checksummed lines and atomically replaced files: the two ways the quorum
//! writes to disk.
//!
//! A checked line is `<crc32c of the JSON, 8 hex digits> <JSON>\n`, the same
//! shape as the single-node metadata log, so an operator reads both the same
//! way. Small state (the vote, the commit point, the snapshot) is replaced
//! whole: written to `<name>.tmp`, fsynced, renamed over `<name>`, and the
//! directory fsynced, so a crash leaves either the old or the new file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why the quorum's files could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The file system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A file does not verify where a torn write cannot explain it.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
}

/// Wraps an `io::Error` with the path it concerns.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { path, source }
}

/// Encodes `value` as one checked line.
pub(crate) fn encode_line<T: Serialize>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let json = serde_json::to_string(value)?;
    Ok(format!("{:08x} {json}\n", crc32c::crc32c(json.as_bytes())).into_bytes())
}

/// Decodes a checked line without its newline; the error says what failed.
pub(crate) fn decode_line<T: DeserializeOwned>(line: &[u8]) -> Result<T, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let (crc, json) = text
        .split_once(' ')
        .ok_or_else(|| "missing checksum".to_string())?;
    let stored = u32::from_str_radix(crc, 16).map_err(|e| format!("bad checksum field: {e}"))?;
    let computed = crc32c::crc32c(json.as_bytes());
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
        ));
    }
    serde_json::from_str(json).map_err(|e| format!("undecodable: {e}"))
}

/// Replaces `dir/name` with a checked line holding `value`, durably.
pub(crate) fn write_checked<T: Serialize>(
    dir: &Path,
    name: &str,
    value: &T,
) -> Result<(), StoreError> {
    let path = dir.join(name);
    let line = encode_line(value).map_err(|e| StoreError::Io {
        path: path.clone(),
        source: io::Error::other(e),
    })?;
    replace_file(dir, name, &[&line])
}

/// Replaces `dir/name` with the concatenation of `parts`, durably: the new
/// content is complete on disk before it becomes visible under `name`.
pub(crate) fn replace_file(dir: &Path, name: &str, parts: &[&[u8]]) -> Result<(), StoreError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut file = File::create(&tmp).map_err(io_error(&tmp))?;
        for part in parts {
            file.write_all(part).map_err(io_error(&tmp))?;
        }
        file.sync_all().map_err(io_error(&tmp))?;
    }
    fs::rename(&tmp, &path).map_err(io_error(&path))?;
    sync_dir(dir)
}

/// Makes a rename or a file creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Reads a file written by [`write_checked`]: `None` if it does not exist.
/// Because the file is only ever replaced by rename, damage is corruption,
/// never a torn write, and is reported rather than ignored.
pub(crate) fn read_checked<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, StoreError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(path)(e)),
    };
    let line = bytes
        .strip_suffix(b"\n")
        .ok_or_else(|| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: "missing final newline".into(),
        })?;
    decode_line(line)
        .map(Some)
        .map_err(|reason| StoreError::Corrupt {
            path: path.to_path_buf(),
            reason,
        })
}

/// Opens `path` for appending, creating it if needed.
pub(crate) fn open_append(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_lines_round_trip_and_detect_flipped_bits() {
        let line = encode_line(&vec![1, 2, 3]).expect("encode");
        let body = &line[..line.len() - 1];
        assert_eq!(decode_line::<Vec<i32>>(body), Ok(vec![1, 2, 3]));
        let mut damaged = body.to_vec();
        let last = damaged.len() - 2;
        damaged[last] ^= 0x01;
        assert!(decode_line::<Vec<i32>>(&damaged)
            .expect_err("damage detected")
            .contains("checksum"));
    }

    #[test]
    fn replaced_files_read_back_and_corruption_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(
            read_checked::<u32>(&dir.path().join("x")).expect("read"),
            None
        );
        write_checked(dir.path(), "x", &7u32).expect("write");
        write_checked(dir.path(), "x", &8u32).expect("write");
        assert_eq!(
            read_checked::<u32>(&dir.path().join("x")).expect("read"),
            Some(8)
        );
        assert!(!dir.path().join("x.tmp").exists());
        fs::write(dir.path().join("x"), b"00000000 8\n").expect("damage");
        assert!(matches!(
            read_checked::<u32>(&dir.path().join("x")),
            Err(StoreError::Corrupt { .. })
        ));
    }
}

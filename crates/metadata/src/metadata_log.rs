//! The durable metadata log: an append-only file of record batches.
//!
//! # Format
//!
//! `<dir>/records.log` holds one line per batch:
//!
//! ```text
//! <crc32c of the JSON, 8 hex digits> <JSON {"offset": first offset, "records": [...]}>\n
//! ```
//!
//! A batch is the unit of atomicity: creating a topic writes its topic,
//! partition and config records as one line, so a crash never leaves half a
//! topic. Every append is fsynced before it is acknowledged (metadata changes
//! are rare and must never be lost). At open, a torn or corrupt *last* line is
//! truncated away (the write was never acknowledged); damage anywhere else is
//! an error, because dropping an acknowledged change silently is worse than
//! refusing to start.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::records::MetadataRecord;

/// Name of the directory, inside the metadata log dir, that holds the log.
pub const DIR_NAME: &str = "millrace-metadata";
const FILE_NAME: &str = "records.log";

#[derive(Serialize, Deserialize)]
struct BatchLine {
    offset: i64,
    records: Vec<MetadataRecord>,
}

/// Failures opening or appending the metadata log.
#[derive(Debug, thiserror::Error)]
pub enum MetadataLogError {
    /// The file system refused.
    #[error("metadata log {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A batch before the last one does not verify.
    #[error("metadata log {path} is corrupt at line {line}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What failed.
        reason: String,
    },
}

/// A batch read back from the log at open.
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedBatch {
    /// Offset of the batch's first record.
    pub offset: i64,
    /// The records, in order.
    pub records: Vec<MetadataRecord>,
}

/// The open log, positioned at its end.
pub struct MetadataLog {
    path: PathBuf,
    file: File,
    next_offset: i64,
}

impl MetadataLog {
    /// Opens (creating if needed) the log in `metadata_dir` and returns it
    /// with every committed batch, in order.
    pub fn open(
        metadata_dir: &Path,
    ) -> Result<(MetadataLog, Vec<CommittedBatch>), MetadataLogError> {
        let dir = metadata_dir.join(DIR_NAME);
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MetadataLogError::Io { path, source }
        };
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(FILE_NAME);
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut batches = Vec::new();
        let mut valid_len: u64 = 0;
        let mut next_offset = 0i64;
        let mut lines = Vec::new();
        for line in BufReader::new(&file).split(b'\n') {
            lines.push(line.map_err(io_err(&path))?);
        }
        let total_len = file.metadata().map_err(io_err(&path))?.len();
        let count = lines.len();
        for (index, line) in lines.into_iter().enumerate() {
            let line_end = valid_len + line.len() as u64 + 1;
            let is_last = index + 1 == count;
            // `split` yields the bytes after the last newline as a final
            // line too: a line is committed only if its newline was written.
            let complete = line_end <= total_len;
            match parse_line(&line) {
                Ok(batch) if complete => {
                    if batch.offset != next_offset {
                        return Err(MetadataLogError::Corrupt {
                            path,
                            line: index + 1,
                            reason: format!(
                                "batch offset {} where {next_offset} was expected",
                                batch.offset
                            ),
                        });
                    }
                    next_offset += batch.records.len() as i64;
                    batches.push(CommittedBatch {
                        offset: batch.offset,
                        records: batch.records,
                    });
                    valid_len = line_end;
                }
                _ if is_last => {
                    tracing::warn!(
                        path = %path.display(),
                        "truncating a torn final metadata batch that was never acknowledged"
                    );
                }
                Ok(_) => {
                    return Err(MetadataLogError::Corrupt {
                        path,
                        line: index + 1,
                        reason: "line is missing its newline".into(),
                    })
                }
                Err(reason) => {
                    return Err(MetadataLogError::Corrupt {
                        path,
                        line: index + 1,
                        reason,
                    })
                }
            }
        }
        if valid_len != total_len {
            file.set_len(valid_len).map_err(io_err(&path))?;
            file.sync_all().map_err(io_err(&path))?;
        }
        Ok((
            MetadataLog {
                path,
                file,
                next_offset,
            },
            batches,
        ))
    }

    /// The offset the next record will get.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Appends `records` as one atomic batch, fsyncs, and returns the offset
    /// of its first record.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<i64, MetadataLogError> {
        let offset = self.next_offset;
        let json = serde_json::to_string(&BatchLine {
            offset,
            records: records.to_vec(),
        })
        .map_err(|e| MetadataLogError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        let line = format!("{:08x} {json}\n", crc32c_of(json.as_bytes()));
        let before = self
            .file
            .metadata()
            .map_err(|source| self.io_error(source))?
            .len();
        let written = self
            .file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.sync_data());
        if let Err(source) = written {
            // Leave the file exactly as it was: the batch was not committed.
            let _ = self.file.set_len(before);
            return Err(self.io_error(source));
        }
        self.next_offset += records.len() as i64;
        Ok(offset)
    }

    fn io_error(&self, source: io::Error) -> MetadataLogError {
        MetadataLogError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

fn parse_line(line: &[u8]) -> Result<BatchLine, String> {
    let text = std::str::from_utf8(line).map_err(|e| format!("not UTF-8: {e}"))?;
    let (crc, json) = text
        .split_once(' ')
        .ok_or_else(|| "missing checksum".to_string())?;
    let stored = u32::from_str_radix(crc, 16).map_err(|e| format!("bad checksum field: {e}"))?;
    let computed = crc32c_of(json.as_bytes());
    if stored != computed {
        return Err(format!(
            "checksum mismatch: stored {stored:08x}, computed {computed:08x}"
        ));
    }
    serde_json::from_str(json).map_err(|e| format!("undecodable batch: {e}"))
}

fn crc32c_of(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::ConfigResourceType;

    fn config(name: &str) -> MetadataRecord {
        MetadataRecord::Config {
            resource_type: ConfigResourceType::Broker,
            resource_name: String::new(),
            name: name.into(),
            value: Some("1".into()),
        }
    }

    #[test]
    fn crc_matches_the_castagnoli_check_value() {
        assert_eq!(crc32c_of(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn replays_batches_and_truncates_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, batches) = MetadataLog::open(dir.path()).unwrap();
            assert!(batches.is_empty());
            assert_eq!(log.append(&[config("a"), config("b")]).unwrap(), 0);
            assert_eq!(log.append(&[config("c")]).unwrap(), 2);
        }
        let file = dir.path().join(DIR_NAME).join(FILE_NAME);
        let mut bytes = fs::read(&file).unwrap();
        let good_len = bytes.len();
        bytes.extend_from_slice(b"0000abcd {\"offset\":3,\"rec");
        fs::write(&file, &bytes).unwrap();
        let (mut log, batches) = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].offset, 2);
        assert_eq!(fs::metadata(&file).unwrap().len() as usize, good_len);
        assert_eq!(log.append(&[config("d")]).unwrap(), 3);
    }

    #[test]
    fn corruption_before_the_tail_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut log, _) = MetadataLog::open(dir.path()).unwrap();
            log.append(&[config("a")]).unwrap();
            log.append(&[config("b")]).unwrap();
        }
        let file = dir.path().join(DIR_NAME).join(FILE_NAME);
        let mut bytes = fs::read(&file).unwrap();
        bytes[20] ^= 0x01;
        fs::write(&file, &bytes).unwrap();
        assert!(matches!(
            MetadataLog::open(dir.path()),
            Err(MetadataLogError::Corrupt { line: 1, .. })
        ));
    }
}

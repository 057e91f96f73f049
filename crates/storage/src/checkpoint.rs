//! Checkpoint files, in Apache Kafka's text formats.
//!
//! # Format
//!
//! Offset checkpoints (`recovery-point-offset-checkpoint`,
//! `log-start-offset-checkpoint`, `replication-offset-checkpoint`,
//! `cleaner-offset-checkpoint`), one per log dir:
//!
//! ```text
//! 0                      version
//! 2                      number of entries
//! orders 0 1234          <topic> <partition> <offset>
//! orders 1 99
//! ```
//!
//! `leader-epoch-checkpoint`, one per partition:
//!
//! ```text
//! 0                      version
//! 2                      number of entries
//! 0 0                    <epoch> <start offset>
//! 3 1200
//! ```
//!
//! `partition.metadata`, one per partition:
//!
//! ```text
//! version: 0
//! topic_id: <16-byte uuid, base64url without padding, as Kafka's Uuid.toString>
//! ```
//!
//! Every file is written to `<name>.tmp`, fsynced, renamed over the old file
//! and the directory fsynced, so a crash leaves either the old or the new
//! contents, never a mix.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::config::TopicPartition;
use crate::error::{Result, StorageError};
use crate::file_names::tmp_path;

const VERSION: i32 = 0;

/// Writes `contents` to `path` crash-atomically (temp file, fsync, rename,
/// fsync of the directory).
pub(crate) fn write_file_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so renames and file creations in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn parse_err(path: &Path, what: &str) -> StorageError {
    StorageError::Corrupt(format!("malformed checkpoint {}: {what}", path.display()))
}

/// Splits a checkpoint into its entry lines after checking version and count.
fn read_entries(path: &Path) -> Result<Option<Vec<String>>> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StorageError::io(
                format!("reading {}", path.display()),
                path,
                e,
            ))
        }
    };
    let mut lines = text.lines();
    let version: i32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| parse_err(path, "missing version"))?;
    if version != VERSION {
        return Err(parse_err(path, &format!("unknown version {version}")));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| parse_err(path, "missing entry count"))?;
    let entries: Vec<String> = lines
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    if entries.len() != count {
        return Err(parse_err(
            path,
            &format!("expected {count} entries, found {}", entries.len()),
        ));
    }
    Ok(Some(entries))
}

fn render(entries: impl ExactSizeIterator<Item = String>) -> String {
    let mut out = format!("{VERSION}\n{}\n", entries.len());
    for line in entries {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A per-dir offset checkpoint: `0\n<count>\n<topic> <partition> <offset>\n…`,
/// one per log dir for recovery points, log start offsets, high watermarks
/// and cleaner offsets (see the module docs).
#[derive(Debug, Clone)]
pub struct OffsetCheckpointFile {
    path: PathBuf,
}

impl OffsetCheckpointFile {
    /// The checkpoint at `path` (which need not exist yet).
    pub fn new(path: PathBuf) -> OffsetCheckpointFile {
        OffsetCheckpointFile { path }
    }

    /// Reads all entries; a missing file is an empty checkpoint.
    pub fn read(&self) -> Result<HashMap<TopicPartition, i64>> {
        let Some(lines) = read_entries(&self.path)? else {
            return Ok(HashMap::new());
        };
        let mut out = HashMap::with_capacity(lines.len());
        for line in lines {
            let mut parts = line.split_whitespace();
            let (Some(topic), Some(partition), Some(offset), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(parse_err(&self.path, &format!("bad line {line:?}")));
            };
            let partition: i32 = partition
                .parse()
                .map_err(|_| parse_err(&self.path, &format!("bad partition in {line:?}")))?;
            let offset: i64 = offset
                .parse()
                .map_err(|_| parse_err(&self.path, &format!("bad offset in {line:?}")))?;
            out.insert(TopicPartition::new(topic, partition), offset);
        }
        Ok(out)
    }

    /// Replaces the checkpoint with `entries`, crash-atomically.
    pub fn write(&self, entries: &[(TopicPartition, i64)]) -> Result<()> {
        let text = render(
            entries
                .iter()
                .map(|(tp, offset)| format!("{} {} {offset}", tp.topic, tp.partition)),
        );
        write_file_atomically(&self.path, text.as_bytes()).map_err(|e| {
            StorageError::io(format!("writing {}", self.path.display()), &self.path, e)
        })
    }
}

/// One entry of the leader epoch history: `epoch` began at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// First offset appended in that epoch.
    pub start_offset: i64,
}

/// A partition's `leader-epoch-checkpoint`: `0\n<count>\n<epoch> <start offset>\n…`.
#[derive(Debug, Clone)]
pub struct LeaderEpochCheckpointFile {
    path: PathBuf,
}

impl LeaderEpochCheckpointFile {
    /// The checkpoint at `path`.
    pub fn new(path: PathBuf) -> LeaderEpochCheckpointFile {
        LeaderEpochCheckpointFile { path }
    }

    /// Reads the epochs; a missing file is an empty history.
    pub fn read(&self) -> Result<Vec<EpochEntry>> {
        let Some(lines) = read_entries(&self.path)? else {
            return Ok(Vec::new());
        };
        lines
            .iter()
            .map(|line| {
                let mut parts = line.split_whitespace();
                match (
                    parts.next().and_then(|e| e.parse().ok()),
                    parts.next().and_then(|o| o.parse().ok()),
                    parts.next(),
                ) {
                    (Some(epoch), Some(start_offset), None) => Ok(EpochEntry {
                        epoch,
                        start_offset,
                    }),
                    _ => Err(parse_err(&self.path, &format!("bad line {line:?}"))),
                }
            })
            .collect()
    }

    /// Replaces the checkpoint, crash-atomically.
    pub fn write(&self, entries: &[EpochEntry]) -> Result<()> {
        let text = render(
            entries
                .iter()
                .map(|e| format!("{} {}", e.epoch, e.start_offset)),
        );
        write_file_atomically(&self.path, text.as_bytes()).map_err(|e| {
            StorageError::io(format!("writing {}", self.path.display()), &self.path, e)
        })
    }
}

/// A partition's `partition.metadata`: `version: 0\ntopic_id: <base64url uuid>\n`,
/// so a re-created topic of the same name is told apart from the old one.
#[derive(Debug, Clone)]
pub struct PartitionMetadataFile {
    path: PathBuf,
}

impl PartitionMetadataFile {
    /// The file at `path`.
    pub fn new(path: PathBuf) -> PartitionMetadataFile {
        PartitionMetadataFile { path }
    }

    /// The stored topic id, or `None` when the file does not exist.
    pub fn read(&self) -> Result<Option<uuid::Uuid>> {
        let text = match fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StorageError::io(
                    format!("reading {}", self.path.display()),
                    &self.path,
                    e,
                ))
            }
        };
        let mut version = None;
        let mut topic_id = None;
        for line in text.lines() {
            if let Some((key, value)) = line.split_once(':') {
                match key.trim() {
                    "version" => version = value.trim().parse::<i32>().ok(),
                    "topic_id" => topic_id = decode_topic_id(value.trim()),
                    _ => {}
                }
            }
        }
        match (version, topic_id) {
            (Some(0), Some(id)) => Ok(Some(id)),
            _ => Err(StorageError::Corrupt(format!(
                "malformed {}: {text:?}",
                self.path.display()
            ))),
        }
    }

    /// Writes the topic id, crash-atomically.
    pub fn write(&self, topic_id: uuid::Uuid) -> Result<()> {
        let text = format!("version: 0\ntopic_id: {}\n", encode_topic_id(topic_id));
        write_file_atomically(&self.path, text.as_bytes()).map_err(|e| {
            StorageError::io(format!("writing {}", self.path.display()), &self.path, e)
        })
    }
}

/// Kafka's `Uuid.toString()`: base64url of the 16 bytes, without padding.
pub fn encode_topic_id(id: uuid::Uuid) -> String {
    millrace_protocol::uuid_text::encode(id.as_bytes())
}

/// Parses Kafka's `Uuid.toString()` form.
pub fn decode_topic_id(text: &str) -> Option<uuid::Uuid> {
    millrace_protocol::uuid_text::decode(text).map(uuid::Uuid::from_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_checkpoint_round_trips_in_kafka_format() {
        let dir = tempfile::tempdir().unwrap();
        let file = OffsetCheckpointFile::new(dir.path().join("recovery-point-offset-checkpoint"));
        assert!(file.read().unwrap().is_empty());
        file.write(&[
            (TopicPartition::new("a-b", 0), 10),
            (TopicPartition::new("c", 7), 0),
        ])
        .unwrap();
        let text = fs::read_to_string(dir.path().join("recovery-point-offset-checkpoint")).unwrap();
        assert_eq!(text, "0\n2\na-b 0 10\nc 7 0\n");
        let read = file.read().unwrap();
        assert_eq!(read[&TopicPartition::new("a-b", 0)], 10);
        assert_eq!(read[&TopicPartition::new("c", 7)], 0);
        assert!(!tmp_path(&dir.path().join("recovery-point-offset-checkpoint")).exists());
    }

    #[test]
    fn malformed_checkpoints_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cp");
        for bad in [
            "",
            "1\n0\n",
            "0\n2\na 0 1\n",
            "0\n1\na x 1\n",
            "0\n1\na 0 1 2\n",
        ] {
            fs::write(&path, bad).unwrap();
            assert!(
                OffsetCheckpointFile::new(path.clone()).read().is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn leader_epoch_checkpoint_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let file = LeaderEpochCheckpointFile::new(dir.path().join("leader-epoch-checkpoint"));
        let entries = vec![
            EpochEntry {
                epoch: 0,
                start_offset: 0,
            },
            EpochEntry {
                epoch: 3,
                start_offset: 1200,
            },
        ];
        file.write(&entries).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap(),
            "0\n2\n0 0\n3 1200\n"
        );
        assert_eq!(file.read().unwrap(), entries);
    }

    #[test]
    fn topic_ids_use_kafkas_base64url_form() {
        // Kafka: Uuid(0x0123456789abcdef, 0xfedcba9876543210).toString()
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        let text = encode_topic_id(id);
        assert_eq!(text, "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(decode_topic_id(&text), Some(id));
        for _ in 0..100 {
            let id = uuid::Uuid::new_v4();
            assert_eq!(decode_topic_id(&encode_topic_id(id)), Some(id));
        }
        let dir = tempfile::tempdir().unwrap();
        let file = PartitionMetadataFile::new(dir.path().join("partition.metadata"));
        assert_eq!(file.read().unwrap(), None);
        file.write(id).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join("partition.metadata")).unwrap(),
            "version: 0\ntopic_id: ASNFZ4mrze_-3LqYdlQyEA\n"
        );
        assert_eq!(file.read().unwrap(), Some(id));
    }
}

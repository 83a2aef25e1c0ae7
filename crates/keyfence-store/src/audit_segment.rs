//! An audit log's records in a file of their own (the log's *segment*),
//! beside the SQLite file that holds its heads, its key and an index.
//!
//! Why: a durable SQLite commit of a batch of records writes WAL frames for
//! the B-tree's leaf, edge and interior pages and syncs them; on the disks
//! this was measured on that cost twice the CPU of the same bytes written
//! with one `pwrite` and one `fdatasync` (bench/RESULTS.md). The segment is
//! exactly that: each batch is one or more *frames* appended at the end of
//! the file and synced before the batch is acknowledged.
//!
//! A frame is
//!
//! ```text
//! magic "KFA1" | first position (u64) | records (u32) | payload bytes (u32)
//! payload: per record, its length (u32) | its leaf hash (32) | its bytes
//! SHA-256 of everything above (32)
//! ```
//!
//! all integers big-endian. The checksum is for torn writes, not for
//! tampering (anyone who can edit the file can recompute it; the Merkle tree
//! and the signed heads are what catch an edit). A crash can tear only the
//! last batch, which was never acknowledged; so the bytes after the last
//! whole, checksummed frame are a torn write if nothing valid follows them
//! and they are fewer than [`TORN_LIMIT`], and anything else that does not
//! parse is damage, which the writer refuses to write after and a reader
//! reports.

use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{digest, SHA256};
use keyfence_core::audit::{Frontier, StoredEntry};
use keyfence_core::store::StoreError;

const MAGIC: [u8; 4] = *b"KFA1";
/// Magic, first position, record count, payload length.
const HEADER: usize = 4 + 8 + 4 + 4;
/// A record's length and leaf hash, before its bytes.
const RECORD_HEAD: usize = 4 + 32;
const CHECKSUM: usize = 32;
/// A frame's payload at most; a batch larger than this is several frames.
const MAX_PAYLOAD: usize = 1 << 20;
/// A batch is written and synced in parts of at most this many bytes.
const WRITE_PART: usize = 8 << 20;
/// Bytes past the last good frame that a restart may treat as a torn write:
/// one part of a batch and the frame the part before it cut.
const TORN_LIMIT: u64 = (WRITE_PART + HEADER + MAX_PAYLOAD + CHECKSUM) as u64;

/// Records between two index marks: a restart walks at most this many (and
/// what a crash kept of the last batch) to find its tree; a read walks
/// frame headers from the mark before the first record it wants.
pub const MARK_EVERY: u64 = 4096;

/// The segment file of `log` beside the SQLite file `database`: the
/// database's file name, `-log-`, and the log's name with every byte but
/// ASCII letters, digits, `-` and `_` written as `%XX`.
pub fn segment_path(database: &Path, log: &str) -> PathBuf {
    let mut name = database
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.push_str("-log-");
    for b in log.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    database.with_file_name(name)
}

/// Encodes consecutive `entries` as frames appended to `out`.
///
/// # Errors
/// A record longer than a frame's payload can hold.
pub fn encode(entries: &[StoredEntry], out: &mut Vec<u8>) -> Result<(), StoreError> {
    let mut rest = entries;
    while let Some(first) = rest.first() {
        let mut payload = 0usize;
        let mut count = 0usize;
        for e in rest {
            let size = RECORD_HEAD + e.data.len();
            if count > 0 && payload + size > MAX_PAYLOAD {
                break;
            }
            if size > MAX_PAYLOAD {
                return Err(StoreError::Backend(format!(
                    "audit record {} is {} bytes, over the {MAX_PAYLOAD} a frame holds",
                    e.seq,
                    e.data.len()
                )));
            }
            payload += size;
            count += 1;
        }
        let start = out.len();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&first.seq.to_be_bytes());
        out.extend_from_slice(&(count as u32).to_be_bytes());
        out.extend_from_slice(&(payload as u32).to_be_bytes());
        for e in &rest[..count] {
            out.extend_from_slice(&(e.data.len() as u32).to_be_bytes());
            out.extend_from_slice(&e.leaf_hash);
            out.extend_from_slice(&e.data);
        }
        let sum = digest(&SHA256, &out[start..]);
        out.extend_from_slice(sum.as_ref());
        rest = &rest[count..];
    }
    Ok(())
}

/// A frame's header.
#[derive(Debug, Clone, Copy)]
struct FrameHead {
    first: u64,
    count: u32,
    payload: u32,
}

impl FrameHead {
    fn parse(bytes: &[u8; HEADER]) -> Option<Self> {
        let (magic, rest) = bytes.split_first_chunk::<4>()?;
        let (first, rest) = rest.split_first_chunk::<8>()?;
        let (count, rest) = rest.split_first_chunk::<4>()?;
        let payload = rest.first_chunk::<4>()?;
        let head = Self {
            first: u64::from_be_bytes(*first),
            count: u32::from_be_bytes(*count),
            payload: u32::from_be_bytes(*payload),
        };
        let plausible = *magic == MAGIC
            && head.count > 0
            && head.payload as usize <= MAX_PAYLOAD
            && head.count as usize * RECORD_HEAD <= head.payload as usize;
        plausible.then_some(head)
    }

    /// The frame's whole length in the file.
    fn len(&self) -> u64 {
        (HEADER + self.payload as usize + CHECKSUM) as u64
    }

    /// The position after its last record.
    fn end(&self) -> u64 {
        self.first + u64::from(self.count)
    }
}

/// A whole frame read from the file.
struct Frame {
    head: FrameHead,
    /// Header, payload and checksum.
    bytes: Vec<u8>,
}

impl Frame {
    fn checksum_ok(&self) -> bool {
        let (body, sum) = self.bytes.split_at(self.bytes.len() - CHECKSUM);
        digest(&SHA256, body).as_ref() == sum
    }

    /// Its records, as stored (a verifier checks their hashes).
    fn entries(&self) -> Option<Vec<StoredEntry>> {
        let mut rest = &self.bytes[HEADER..self.bytes.len() - CHECKSUM];
        let mut out = Vec::with_capacity(self.head.count as usize);
        for seq in self.head.first..self.head.end() {
            let (len, after) = rest.split_first_chunk::<4>()?;
            let (leaf_hash, after) = after.split_first_chunk::<32>()?;
            let len = u32::from_be_bytes(*len) as usize;
            if after.len() < len {
                return None;
            }
            let (data, after) = after.split_at(len);
            out.push(StoredEntry {
                seq,
                data: data.to_vec(),
                leaf_hash: *leaf_hash,
            });
            rest = after;
        }
        rest.is_empty().then_some(out)
    }
}

/// What a walk over the file found at an offset.
enum At {
    /// A frame whose length fits in the file.
    Frame(FrameHead),
    /// The end of the file.
    End,
    /// Bytes that are not a frame header, or a frame cut short.
    Broken,
}

fn io(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

/// Reads one segment file by position (`pread`): a reader never moves a
/// cursor another holds.
struct SegmentFile<'a> {
    file: &'a File,
    path: &'a Path,
    len: u64,
}

impl SegmentFile<'_> {
    fn at(&self, offset: u64) -> Result<At, StoreError> {
        if offset == self.len {
            return Ok(At::End);
        }
        if self.len - offset < HEADER as u64 {
            return Ok(At::Broken);
        }
        let mut header = [0u8; HEADER];
        self.file
            .read_exact_at(&mut header, offset)
            .map_err(|e| io(self.path, e))?;
        Ok(match FrameHead::parse(&header) {
            Some(head) if head.len() <= self.len - offset => At::Frame(head),
            _ => At::Broken,
        })
    }

    fn frame(&self, offset: u64, head: FrameHead) -> Result<Frame, StoreError> {
        let mut bytes = vec![0u8; head.len() as usize];
        self.file
            .read_exact_at(&mut bytes, offset)
            .map_err(|e| io(self.path, e))?;
        Ok(Frame { head, bytes })
    }

    /// Whether what starts at `offset` (a frame that failed its checksum, or
    /// bytes that are no frame) is a torn last write: short enough, and no
    /// whole checksummed frame anywhere after its start.
    fn torn_at(&self, offset: u64) -> Result<bool, StoreError> {
        if self.len - offset > TORN_LIMIT {
            return Ok(false);
        }
        let mut rest = vec![0u8; (self.len - offset) as usize];
        self.file
            .read_exact_at(&mut rest, offset)
            .map_err(|e| io(self.path, e))?;
        for start in 1..rest.len() {
            if !rest[start..].starts_with(&MAGIC) {
                continue;
            }
            if let At::Frame(head) = self.at(offset + start as u64)? {
                if self.frame(offset + start as u64, head)?.checksum_ok() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    fn damaged(&self, offset: u64, position: u64) -> StoreError {
        StoreError::Corrupt(format!(
            "audit segment {} is damaged at byte {offset} (record {position}); \
             run `keyfence audit verify`",
            self.path.display()
        ))
    }

    /// Walks the frames from `offset`, where record `position` starts, to
    /// the end of the log, handing each whole frame to `each` until it
    /// returns false. Returns the offset and position where the log ends.
    fn walk(
        &self,
        mut offset: u64,
        mut position: u64,
        mut each: impl FnMut(u64, &Frame, bool) -> Result<bool, StoreError>,
    ) -> Result<(u64, u64), StoreError> {
        loop {
            let head = match self.at(offset)? {
                At::End => return Ok((offset, position)),
                At::Broken if self.torn_at(offset)? => return Ok((offset, position)),
                At::Broken => return Err(self.damaged(offset, position)),
                At::Frame(head) => head,
            };
            if head.first != position {
                return Err(self.damaged(offset, position));
            }
            let frame = self.frame(offset, head)?;
            let checksum_ok = frame.checksum_ok();
            if !checksum_ok && self.torn_at(offset)? {
                return Ok((offset, position));
            }
            if !each(offset, &frame, checksum_ok)? {
                return Ok((offset, position));
            }
            offset += head.len();
            position = head.end();
        }
    }
}

/// Opens the segment at `path` for reading from byte `offset`: `None` if it
/// does not exist and nothing was written to it (`offset` 0).
fn open_to_read(path: &Path, offset: u64) -> Result<Option<(File, u64)>, StoreError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound && offset == 0 => return Ok(None),
        Err(e) => return Err(io(path, e)),
    };
    let len = file.metadata().map_err(|e| io(path, e))?.len();
    if offset > len {
        return Err(StoreError::Corrupt(format!(
            "audit segment {} ends at byte {len}, before its index mark at {offset}: \
             records were removed",
            path.display()
        )));
    }
    Ok(Some((file, len)))
}

/// Up to `limit` records from position `from` of the segment at `path`,
/// whose frames from byte `mark.offset` on start with record `mark.size`
/// (an index mark at or before `from`).
pub(crate) fn read(
    path: &Path,
    mark: &Mark,
    from: u64,
    limit: usize,
) -> Result<Vec<StoredEntry>, StoreError> {
    let Some((file, len)) = open_to_read(path, mark.offset)? else {
        return Ok(Vec::new());
    };
    let segment = SegmentFile {
        file: &file,
        path,
        len,
    };
    let mut out = Vec::new();
    segment.walk(mark.offset, mark.size, |at, frame, _| {
        if frame.head.end() <= from {
            return Ok(true);
        }
        let entries = frame
            .entries()
            .ok_or_else(|| segment.damaged(at, frame.head.first))?;
        let wanted = limit - out.len();
        out.extend(entries.into_iter().filter(|e| e.seq >= from).take(wanted));
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

/// The tree of the whole log, from `mark` and the segment's records after
/// it, without writing (an auditor's read).
pub(crate) fn tree(path: &Path, mark: Mark) -> Result<Frontier, StoreError> {
    let Some((file, len)) = open_to_read(path, mark.offset)? else {
        return Ok(mark.edge);
    };
    let segment = SegmentFile {
        file: &file,
        path,
        len,
    };
    let mut tree = mark.edge;
    segment.walk(mark.offset, mark.size, |at, frame, _| {
        let entries = frame
            .entries()
            .ok_or_else(|| segment.damaged(at, frame.head.first))?;
        entries.iter().for_each(|e| tree.push(e.leaf_hash));
        Ok(true)
    })?;
    Ok(tree)
}

/// Where an index mark says the log stood: `size` records, the first
/// `base` of them outside the segment, frames from `base` on ending at
/// byte `offset`, and the tree of those `size` records.
#[derive(Debug, Clone)]
pub(crate) struct Mark {
    pub size: u64,
    pub offset: u64,
    pub edge: Frontier,
}

/// The one writer of a segment: holds the file's exclusive lock, knows the
/// log's end and its tree.
pub(crate) struct SegmentWriter {
    file: File,
    path: PathBuf,
    /// Byte after the last frame.
    end: u64,
    /// The tree of every record of the log.
    pub frontier: Frontier,
    /// The log's size at the last index mark.
    pub marked: u64,
    buf: Vec<u8>,
}

impl SegmentWriter {
    /// Opens (creating) the segment at `path` for writing from `mark`:
    /// locks it, walks the frames after the mark to find the log's end and
    /// tree, and cuts off a torn last write. Refuses a segment that another
    /// process writes, that is shorter than the mark, or that is damaged.
    pub fn open(path: &Path, mark: Mark) -> Result<Self, StoreError> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| io(path, e))?;
        if !existed {
            // The new file's name must survive a crash as its contents will.
            sync_parent(path)?;
        }
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => StoreError::Conflict(format!(
                "audit segment {} is being written by another process",
                path.display()
            )),
            std::fs::TryLockError::Error(e) => io(path, e),
        })?;
        let len = file.metadata().map_err(|e| io(path, e))?.len();
        if mark.offset > len {
            return Err(StoreError::Corrupt(format!(
                "audit segment {} ends at byte {len}, before its index mark at {}: records were removed",
                path.display(),
                mark.offset
            )));
        }
        let segment = SegmentFile {
            file: &file,
            path,
            len,
        };
        let mut frontier = mark.edge;
        let (end, _) = segment.walk(mark.offset, mark.size, |at, frame, checksum_ok| {
            let entries = frame
                .entries()
                .filter(|_| checksum_ok)
                .ok_or_else(|| segment.damaged(at, frame.head.first))?;
            entries.iter().for_each(|e| frontier.push(e.leaf_hash));
            Ok(true)
        })?;
        if end < len {
            tracing::warn!(
                segment = %path.display(),
                offset = end,
                bytes = len - end,
                "discarding a torn write at the end of the audit segment (never acknowledged)"
            );
            file.set_len(end).map_err(|e| io(path, e))?;
            file.sync_data().map_err(|e| io(path, e))?;
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            end,
            frontier,
            marked: mark.size,
            buf: Vec::new(),
        })
    }

    /// The number of records in the log.
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }

    /// The byte after the last frame.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends `entries` (which must continue the log) and makes them
    /// durable; `frontier` is the tree with them. On failure nothing of them
    /// stays in the file.
    pub fn append(
        &mut self,
        entries: &[StoredEntry],
        frontier: &Frontier,
    ) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.seq != self.size() || frontier.size() != self.size() + entries.len() as u64 {
            return Err(StoreError::Conflict(format!(
                "audit segment {} continues at {}, not {}",
                self.path.display(),
                self.size(),
                first.seq
            )));
        }
        self.buf.clear();
        encode(entries, &mut self.buf)?;
        if let Err(e) = self.write_durably() {
            // Leave no part of the batch behind for the next one to follow.
            let cut = self
                .file
                .set_len(self.end)
                .and_then(|()| self.file.sync_data());
            if let Err(cut) = cut {
                tracing::error!(error = %cut, "cutting a failed audit write off its segment failed");
            }
            return Err(e);
        }
        self.end += self.buf.len() as u64;
        self.frontier = frontier.clone();
        Ok(())
    }

    fn write_durably(&self) -> Result<(), StoreError> {
        for (i, part) in self.buf.chunks(WRITE_PART).enumerate() {
            let at = self.end + (i * WRITE_PART) as u64;
            self.file
                .write_all_at(part, at)
                .map_err(|e| io(&self.path, e))?;
            self.file.sync_data().map_err(|e| io(&self.path, e))?;
        }
        Ok(())
    }
}

/// Syncs the directory holding `path`, so a file created in it stays.
fn sync_parent(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

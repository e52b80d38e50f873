//! Where a blob lives on disk: the file names of short and long blob
//! names, and the slots of long names.
//!
//! # Layout
//!
//! A partition is a directory directly below `storage_directory`; a blob is
//! a file in it.
//!
//! * A name of at most 127 bytes ([`MAX_SHORT_NAME`]) is stored in the file
//!   named by its lowercase hex encoding (the empty name is the file
//!   `_empty`, which no hex string can equal). This is the reference
//!   crate's layout, so its data directories open unchanged.
//! * A longer name would make a hex file name over the 255 bytes file
//!   systems allow. It is stored in a *slot*: the data file
//!   `~<h>-<k>`, where `<h>` is the 16 hex digits of the name's 64-bit
//!   FNV-1a hash and `<k>` a decimal index, and the name file
//!   `~<h>-<k>.name`, which holds the whole name. `~` is not a hex digit,
//!   so these never look like short names. Names with the same hash take
//!   slots `0, 1, 2, …` in turn; `open` and `remove` probe from slot 0 and
//!   compare the stored name, so a hash collision costs a probe, never a
//!   wrong blob. `scan` reads the name of each data file from its name
//!   file.
//!
//! # Invariants
//!
//! * The name files of one hash occupy consecutive slots from 0 (a probe
//!   ends at the first missing one). A slot whose data file is gone keeps
//!   its name file while a later slot of the same hash is in use; `remove`
//!   deletes the name files it no longer needs from the top of the chain
//!   down.
//! * A data file never exists without its name file: `open` writes and
//!   fsyncs the name file and syncs the directory before it creates the
//!   data file; `remove` deletes the data file before the name file. A
//!   crash may leave a name file without data (no blob: `scan` skips it
//!   and the next `open` of that name reuses the slot), never the reverse.
//! * Creating and removing slots, and reading them in `scan`, hold one
//!   process-wide lock, so concurrent opens of one long name agree on its
//!   slot.
//! * Errors do not depend on the encoding: a long name's errors carry the
//!   hex of the whole name, as a short name's do.

use crate::{hex, Error};
use parking_lot::Mutex;
use std::{
    fs::{self, File, OpenOptions},
    io::{ErrorKind, Write},
    path::Path,
};

/// The file name of the blob whose name is empty.
const EMPTY_NAME: &str = "_empty";

/// Longest name stored as a hex file name (254 characters; file names are
/// at most 255 bytes).
const MAX_SHORT_NAME: usize = 127;

/// First character of a long name's files (not a hex digit, not `_`).
const LONG_MARK: char = '~';

/// Suffix of a long name's name file.
pub(super) const NAME_SUFFIX: &str = ".name";

/// Long names starting with this collide in tests (see [`name_hash`]).
#[cfg(test)]
pub(super) const COLLIDE: &[u8] = b"\xffcollide:";

/// Held while long-name slots are created, removed or read.
static SLOTS: Mutex<()> = Mutex::new(());

/// The file name of the blob named `name`, if the name is short.
pub(super) fn file_name(name: &[u8]) -> Option<String> {
    if name.is_empty() {
        Some(EMPTY_NAME.to_string())
    } else if name.len() <= MAX_SHORT_NAME {
        Some(hex(name))
    } else {
        None
    }
}

/// The short blob name encoded by `file`, if it is one this module writes.
pub(super) fn blob_name(file: &str) -> Option<Vec<u8>> {
    if file == EMPTY_NAME {
        return Some(Vec::new());
    }
    if file.is_empty() || file.len() % 2 != 0 || file.len() > 2 * MAX_SHORT_NAME {
        return None;
    }
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    file.as_bytes()
        .chunks_exact(2)
        .map(|pair| Some(digit(pair[0])? << 4 | digit(pair[1])?))
        .collect()
}

/// 64-bit FNV-1a: stable across builds and platforms, as a file name must
/// be. Collisions are resolved by probing, so its strength does not matter.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The hash naming a long name's slots. Tests make names starting with
/// [`COLLIDE`] collide.
pub(super) fn name_hash(name: &[u8]) -> u64 {
    #[cfg(test)]
    if name.starts_with(COLLIDE) {
        return 0x0123_4567_89ab_cdef;
    }
    fnv1a(name)
}

/// The data file of slot `k` of the long names hashing to `hash`.
pub(super) fn slot_file(hash: u64, k: u64) -> String {
    format!("{LONG_MARK}{hash:016x}-{k}")
}

/// The name file of a slot's data file.
pub(super) fn name_file(data: &str) -> String {
    format!("{data}{NAME_SUFFIX}")
}

/// Whether `file` is a slot's data file (`~` 16 hex digits `-` index).
pub(super) fn is_slot_file(file: &str) -> bool {
    let Some(rest) = file.strip_prefix(LONG_MARK) else {
        return false;
    };
    let Some((hash, index)) = rest.split_once('-') else {
        return false;
    };
    hash.len() == 16
        && hash.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        && !index.is_empty()
        && index.bytes().all(|c| c.is_ascii_digit())
}

/// Where a probe for a long name ended.
enum Probe {
    /// The slot holding the name: its index and data file.
    Found(u64, String),
    /// The first free slot of the name's hash: its data file.
    Free(String),
}

/// Looks up the long `name` in the partition directory `dir`.
fn probe(dir: &Path, name: &[u8]) -> std::io::Result<Probe> {
    let hash = name_hash(name);
    let mut k = 0;
    loop {
        let data = slot_file(hash, k);
        match fs::read(dir.join(name_file(&data))) {
            Ok(stored) if stored == name => return Ok(Probe::Found(k, data)),
            Ok(_) => k += 1,
            Err(err) if err.kind() == ErrorKind::NotFound => return Ok(Probe::Free(data)),
            Err(err) => return Err(err),
        }
    }
}

/// Makes the creation or removal of entries in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Opens the data file at `path` in `dir`, creating it (durably) if it does
/// not exist.
fn open_data(dir: &Path, path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    match options.clone().create_new(true).open(path) {
        Ok(file) => {
            sync_dir(dir)?;
            Ok(file)
        }
        Err(err) if err.kind() == ErrorKind::AlreadyExists => options.open(path),
        Err(err) => Err(err),
    }
}

/// Opens the data file of the long `name` in `dir`, first writing its name
/// file (durably) if the name has no slot yet.
fn open_long(dir: &Path, name: &[u8]) -> std::io::Result<File> {
    let _slots = SLOTS.lock();
    let data = match probe(dir, name)? {
        Probe::Found(_, data) => data,
        Probe::Free(data) => {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join(name_file(&data)))?;
            file.write_all(name)?;
            file.sync_all()?;
            sync_dir(dir)?;
            data
        }
    };
    open_data(dir, &dir.join(data))
}

/// Opens the file of the blob `name` in the partition directory `dir`,
/// creating it (durably) if it does not exist.
pub(super) fn open_blob(dir: &Path, name: &[u8]) -> std::io::Result<File> {
    match file_name(name) {
        Some(file) => open_data(dir, &dir.join(file)),
        None => open_long(dir, name),
    }
}

/// Removes the file of the blob `name` from `dir`; fails if there is none.
pub(super) fn remove_blob(dir: &Path, name: &[u8]) -> Result<(), ()> {
    match file_name(name) {
        Some(file) => fs::remove_file(dir.join(file)).map_err(|_| ()),
        None => remove_long(dir, name),
    }
}

/// The names of the blobs in the partition directory `dir`, sorted.
pub(super) fn scan_dir(dir: &Path, partition: &str) -> Result<Vec<Vec<u8>>, Error> {
    let corrupt = || Error::PartitionCorrupt(partition.into());
    let _slots = SLOTS.lock();
    let entries = fs::read_dir(dir).map_err(|_| Error::PartitionMissing(partition.into()))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|_| Error::ReadFailed)?;
        if !entry.file_type().map_err(|_| Error::ReadFailed)?.is_file() {
            return Err(corrupt());
        }
        let file = entry.file_name();
        let file = file.to_str().ok_or_else(corrupt)?;
        if let Some(name) = blob_name(file) {
            names.push(name);
        } else if is_slot_file(file) {
            let name = fs::read(dir.join(name_file(file))).map_err(|_| corrupt())?;
            if name.len() <= MAX_SHORT_NAME {
                return Err(corrupt());
            }
            names.push(name);
        } else if !file.strip_suffix(NAME_SUFFIX).is_some_and(is_slot_file) {
            return Err(corrupt());
        }
    }
    names.sort_unstable();
    // Two files claiming one name: the directory was not written by us.
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(corrupt());
    }
    Ok(names)
}

/// Removes the long `name`'s data file from `dir`, then the name files its
/// hash no longer needs.
fn remove_long(dir: &Path, name: &[u8]) -> Result<(), ()> {
    let _slots = SLOTS.lock();
    let Ok(Probe::Found(k, data)) = probe(dir, name) else {
        return Err(());
    };
    fs::remove_file(dir.join(&data)).map_err(|_| ())?;
    let hash = name_hash(name);
    if dir.join(name_file(&slot_file(hash, k + 1))).exists() {
        // A later slot is in use: this name file keeps the chain whole.
        return Ok(());
    }
    // Trim the chain's tail of slots without data, from the top down, so a
    // crash midway leaves no gap. What stays is harmless, so failures
    // here are not the removal's.
    for slot in (0..=k).rev() {
        let data = slot_file(hash, slot);
        if slot != k && dir.join(&data).exists() {
            break;
        }
        if fs::remove_file(dir.join(name_file(&data))).is_err() {
            break;
        }
    }
    Ok(())
}

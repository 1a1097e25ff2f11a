//! The narrow seam between the store and the file system.
//!
//! Every byte the store reads or writes goes through [`Fs`]: open, append, sync, rename and
//! directory sync. [`OsFs`] is the real thing; [`SimFs`] is a simulated disk that remembers what
//! was synced and, on [`SimFs::crash`], forgets everything that was not, so tests can prove the
//! durability promise for power loss and not only for a killed process.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

/// A file opened for writing through an [`Fs`].
pub trait WriteFile: Send + fmt::Debug {
    /// Appends all of `buf` at the end of the file.
    fn append(&mut self, buf: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (fsync / fdatasync).
    fn sync(&mut self) -> io::Result<()>;
}

/// A file opened for positional reads through an [`Fs`]. Like an open descriptor, it keeps
/// reading the same file after the name is renamed over or removed.
pub trait ReadFile: Send + Sync + fmt::Debug {
    /// The file's length now (it may still be growing).
    fn size(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

/// Reads a [`ReadFile`] in order from `pos` up to `end` (by default its whole length when the
/// cursor is made: a file still growing is read as it was).
pub(crate) struct ReadCursor {
    file: Arc<dyn ReadFile>,
    pos: u64,
    end: u64,
}

impl ReadCursor {
    pub fn new(file: Arc<dyn ReadFile>) -> Self {
        let end = file.size().unwrap_or(0);
        Self::range(file, 0, end)
    }
    pub fn range(file: Arc<dyn ReadFile>, pos: u64, end: u64) -> Self {
        Self { file, pos, end }
    }
}

impl Read for ReadCursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.end.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        let n = self.file.read_at(&mut buf[..room], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Proof of an exclusive lock; dropping it releases the lock.
pub trait LockGuard: Send + fmt::Debug {}

/// The file-system operations the store needs, and nothing more.
pub trait Fs: Send + Sync + fmt::Debug + 'static {
    /// Opens `path` for reading, or `None` if it does not exist.
    fn open_read(&self, path: &Path) -> io::Result<Option<Box<dyn BufRead + Send>>>;
    /// Reads `path` from byte `offset` to its end.
    fn read_from(&self, path: &Path, offset: u64) -> io::Result<Vec<u8>>;
    /// Creates (or truncates) `path` for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>>;
    /// Opens `path` for appending, creating it if missing; returns the file and its length.
    fn open_append(&self, path: &Path) -> io::Result<(Box<dyn WriteFile>, u64)>;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes `path`; a missing file is not an error.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes renames, creations and removals in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive lock named by `path`; `Ok(None)` when someone else holds it.
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>>;
    /// Opens `path` for positional reads, or `None` if it does not exist.
    fn open_file(&self, path: &Path) -> io::Result<Option<Arc<dyn ReadFile>>>;
    /// Gives the file at `from` a second name `to` (a hard link; `to` must not exist).
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// The paths of the files in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Shortens `path` to its first `len` bytes, in place, and makes that durable (what stays
    /// is unchanged, so a crash at any point leaves either length).
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
}

/// The operating system's file system: syncs are `fdatasync` (`fsync` for directories) and the
/// lock is an OS file lock, which the kernel releases when the process dies.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsFs;

#[derive(Debug)]
struct OsFile(File);

impl WriteFile for OsFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        // IMPORTANT: fdatasync is enough for an append-only file whose size change it covers.
        self.0.sync_data()
    }
}

impl ReadFile for OsFile {
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            match self.0.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}

#[derive(Debug)]
struct OsLock(#[allow(dead_code)] File);
impl LockGuard for OsLock {}

impl Fs for OsFs {
    fn open_read(&self, path: &Path) -> io::Result<Option<Box<dyn BufRead + Send>>> {
        match File::open(path) {
            Ok(f) => Ok(Some(Box::new(BufReader::with_capacity(1 << 16, f)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn read_from(&self, path: &Path, offset: u64) -> io::Result<Vec<u8>> {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        Ok(buf)
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(OsFile(File::create(path)?)))
    }
    fn open_append(&self, path: &Path) -> io::Result<(Box<dyn WriteFile>, u64)> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        let len = f.metadata()?.len();
        Ok((Box::new(OsFile(f)), len))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(OsLock(f)))),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }
    fn open_file(&self, path: &Path) -> io::Result<Option<Arc<dyn ReadFile>>> {
        match File::open(path) {
            Ok(f) => Ok(Some(Arc::new(OsFile(f)))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|entry| entry.map(|e| e.path()))
            .collect()
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }
}

/// The journal of a store that opened read-only because it could not open it for appending:
/// never written (the flusher opens the real one before writes resume).
#[derive(Debug)]
pub(crate) struct Unopened;

impl WriteFile for Unopened {
    fn append(&mut self, _: &[u8]) -> io::Result<()> {
        Err(io::Error::other("the journal is not open for writing"))
    }
    fn sync(&mut self) -> io::Result<()> {
        Err(io::Error::other("the journal is not open for writing"))
    }
}

/// A simulated disk for tests.
///
/// Files are inodes with a *current* content (what reads see) and a *synced* content (what
/// survives a crash); the directory has a current and a synced name table too, so a rename or a
/// new file that was never followed by [`Fs::sync_dir`] is undone by a crash, as on a real disk.
/// Faults can be injected: [`SimFs::fail_after`] makes every operation after the next `n` fail.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    inner: Arc<Mutex<SimState>>,
    /// While true, syncs wait (see [`SimFs::hold_syncs`]).
    gate: Arc<(Mutex<bool>, Condvar)>,
}

#[derive(Debug, Default)]
struct SimState {
    inodes: Vec<SimInode>,
    names: HashMap<PathBuf, usize>,
    synced_names: HashMap<PathBuf, usize>,
    locks: HashSet<PathBuf>,
    /// Operations still allowed before injected failures start (`None`: never fail).
    ops_left: Option<u64>,
    /// The kind of the injected errors (`None`: [`io::ErrorKind::Other`]).
    fail_kind: Option<io::ErrorKind>,
    /// Creating a file whose name ends with this fails with this kind (see
    /// [`SimFs::refuse_creates`]).
    refused_creates: Option<(String, io::ErrorKind)>,
    ops_done: u64,
}

#[derive(Debug, Default, Clone)]
struct SimInode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

impl SimFs {
    /// A simulated disk with no files, no locks and no injected failures.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates power loss: returns the disk as a restarted machine would find it, with
    /// unsynced data and unsynced directory changes gone and no locks held. `self` is left
    /// alone, so threads of the "dead" process that still write to it cannot touch the result.
    pub fn crash(&self) -> SimFs {
        let s = self.inner.lock().unwrap();
        let inodes = s
            .inodes
            .iter()
            .map(|i| SimInode {
                data: i.synced.clone(),
                synced: i.synced.clone(),
            })
            .collect();
        SimFs {
            inner: Arc::new(Mutex::new(SimState {
                inodes,
                names: s.synced_names.clone(),
                synced_names: s.synced_names.clone(),
                ..SimState::default()
            })),
            gate: Arc::default(),
        }
    }

    /// Like [`SimFs::crash`], but each file keeps, past its synced content, a prefix of the
    /// bytes appended to it since its last sync, of a length chosen pseudo-randomly from `seed`
    /// (possibly none, possibly all): the operating system had written part of the unsynced
    /// data back when the power went, which tears the last write anywhere, even mid-line.
    /// Files whose unsynced content does not extend their synced content (truncated and
    /// rewritten) come back as synced, and the directory as last synced, as with `crash`.
    pub fn crash_torn(&self, seed: u64) -> SimFs {
        let crashed = self.crash();
        let s = self.inner.lock().unwrap();
        let mut c = crashed.inner.lock().unwrap();
        let mut x = seed | 1;
        for (inode, kept) in s.inodes.iter().zip(c.inodes.iter_mut()) {
            // xorshift64: reproducible without a dependency.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if let Some(unsynced) = inode.data.strip_prefix(&inode.synced[..]) {
                let keep = (x % (unsynced.len() as u64 + 1)) as usize;
                kept.data.extend_from_slice(&unsynced[..keep]);
                kept.synced = kept.data.clone();
            }
        }
        drop(c);
        crashed
    }

    /// After `n` more successful operations, every write-side operation fails with an I/O error
    /// (until [`SimFs::heal`]).
    pub fn fail_after(&self, n: u64) {
        self.fail_after_with(n, io::ErrorKind::Other);
    }

    /// Like [`SimFs::fail_after`], with errors of `kind`, such as
    /// [`io::ErrorKind::StorageFull`] for a full disk. The message does not say which.
    pub fn fail_after_with(&self, n: u64, kind: io::ErrorKind) {
        let mut s = self.inner.lock().unwrap();
        s.ops_left = Some(n);
        s.fail_kind = Some(kind);
    }

    /// Makes every sync wait until [`SimFs::release_syncs`]: a disk that is slow to flush.
    pub fn hold_syncs(&self) {
        *self.gate.0.lock().unwrap() = true;
    }

    /// Lets the syncs held by [`SimFs::hold_syncs`] proceed; later ones no longer wait.
    pub fn release_syncs(&self) {
        *self.gate.0.lock().unwrap() = false;
        self.gate.1.notify_all();
    }

    fn wait_for_gate(&self) {
        let (held, cv) = &*self.gate;
        let mut held = held.lock().unwrap();
        while *held {
            held = cv.wait(held).unwrap();
        }
    }

    /// Stops injecting failures; operations that already failed are not redone.
    pub fn heal(&self) {
        let mut s = self.inner.lock().unwrap();
        s.ops_left = None;
        s.fail_kind = None;
        s.refused_creates = None;
    }

    /// Makes every creation of a file whose name ends with `suffix` fail with `kind` (e.g.
    /// `".json.tmp"` and [`io::ErrorKind::StorageFull`]: compactions fail, journal writes do
    /// not), until [`SimFs::heal`].
    pub fn refuse_creates(&self, suffix: &str, kind: io::ErrorKind) {
        self.inner.lock().unwrap().refused_creates = Some((suffix.to_owned(), kind));
    }

    /// How many write-side operations ran so far (to aim [`SimFs::fail_after`] at each step).
    pub fn ops_done(&self) -> u64 {
        self.inner.lock().unwrap().ops_done
    }

    /// The current content of `path`, if it exists.
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let s = self.inner.lock().unwrap();
        s.names.get(path).map(|&i| s.inodes[i].data.clone())
    }

    /// Replaces the content of `path` (synced), creating it if needed: for corruption tests.
    pub fn put(&self, path: &Path, data: &[u8]) {
        let mut s = self.inner.lock().unwrap();
        let id = s.inodes.len();
        s.inodes.push(SimInode {
            data: data.to_vec(),
            synced: data.to_vec(),
        });
        s.names.insert(path.to_owned(), id);
        s.synced_names.insert(path.to_owned(), id);
    }

    /// Lists existing paths (sorted).
    pub fn paths(&self) -> Vec<PathBuf> {
        let s = self.inner.lock().unwrap();
        let mut v: Vec<_> = s.names.keys().cloned().collect();
        v.sort();
        v
    }
}

impl SimState {
    /// Counts a write-side operation, failing it if injected failures have started.
    fn tick(&mut self) -> io::Result<()> {
        if let Some(left) = self.ops_left.as_mut() {
            if *left == 0 {
                let kind = self.fail_kind.unwrap_or(io::ErrorKind::Other);
                return Err(io::Error::new(kind, "simulated I/O failure"));
            }
            *left -= 1;
        }
        self.ops_done += 1;
        Ok(())
    }

    fn inode(&self, path: &Path) -> io::Result<usize> {
        self.names
            .get(path)
            .copied()
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, path.display().to_string()))
    }
}

#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    inode: usize,
}

impl WriteFile for SimFile {
    fn append(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut s = self.fs.inner.lock().unwrap();
        s.tick()?;
        s.inodes[self.inode].data.extend_from_slice(buf);
        Ok(())
    }
    fn sync(&mut self) -> io::Result<()> {
        self.fs.wait_for_gate();
        let mut s = self.fs.inner.lock().unwrap();
        s.tick()?;
        let inode = &mut s.inodes[self.inode];
        inode.synced = inode.data.clone();
        Ok(())
    }
}

/// An open simulated file: reads see the inode's current content, whatever its names now.
#[derive(Debug)]
struct SimReader {
    fs: SimFs,
    inode: usize,
}

impl ReadFile for SimReader {
    fn size(&self) -> io::Result<u64> {
        Ok(self.fs.inner.lock().unwrap().inodes[self.inode].data.len() as u64)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let s = self.fs.inner.lock().unwrap();
        let data = &s.inodes[self.inode].data;
        let from = (offset as usize).min(data.len());
        let n = buf.len().min(data.len() - from);
        buf[..n].copy_from_slice(&data[from..from + n]);
        Ok(n)
    }
}

#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    path: PathBuf,
}
impl LockGuard for SimLock {}
impl Drop for SimLock {
    fn drop(&mut self) {
        self.fs.inner.lock().unwrap().locks.remove(&self.path);
    }
}

impl Fs for SimFs {
    fn open_read(&self, path: &Path) -> io::Result<Option<Box<dyn BufRead + Send>>> {
        Ok(self
            .contents(path)
            .map(|d| Box::new(io::Cursor::new(d)) as Box<dyn BufRead + Send>))
    }
    fn read_from(&self, path: &Path, offset: u64) -> io::Result<Vec<u8>> {
        let s = self.inner.lock().unwrap();
        let data = &s.inodes[s.inode(path)?].data;
        Ok(data.get(offset as usize..).unwrap_or_default().to_vec())
    }
    fn create(&self, path: &Path) -> io::Result<Box<dyn WriteFile>> {
        let mut s = self.inner.lock().unwrap();
        s.tick()?;
        if let Some((suffix, kind)) = &s.refused_creates
            && path.to_string_lossy().ends_with(suffix.as_str())
        {
            return Err(io::Error::new(*kind, "simulated refused creation"));
        }
        // A new inode: like O_TRUNC on a fresh file, the old content stays with the old inode
        // only if it was renamed away; truncating in place is what create does.
        let inode = match s.names.get(path) {
            Some(&i) => {
                s.inodes[i].data.clear();
                i
            }
            None => {
                s.inodes.push(SimInode::default());
                let i = s.inodes.len() - 1;
                s.names.insert(path.to_owned(), i);
                i
            }
        };
        Ok(Box::new(SimFile {
            fs: self.clone(),
            inode,
        }))
    }
    fn open_append(&self, path: &Path) -> io::Result<(Box<dyn WriteFile>, u64)> {
        let mut s = self.inner.lock().unwrap();
        s.tick()?;
        let inode = match s.names.get(path) {
            Some(&i) => i,
            None => {
                s.inodes.push(SimInode::default());
                let i = s.inodes.len() - 1;
                s.names.insert(path.to_owned(), i);
                i
            }
        };
        let len = s.inodes[inode].data.len() as u64;
        Ok((
            Box::new(SimFile {
                fs: self.clone(),
                inode,
            }),
            len,
        ))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.inner.lock().unwrap();
        s.tick()?;
        let i = s.inode(from)?;
        s.names.remove(from);
        s.names.insert(to.to_owned(), i);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut s = self.inner.lock().unwrap();
        s.tick()?;
        s.names.remove(path);
        Ok(())
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        // One directory is all the store uses, so the whole name table is synced.
        let mut s = self.inner.lock().unwrap();
        s.tick()?;
        s.synced_names = s.names.clone();
        Ok(())
    }
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Box<dyn LockGuard>>> {
        let mut s = self.inner.lock().unwrap();
        if !s.locks.insert(path.to_owned()) {
            return Ok(None);
        }
        Ok(Some(Box::new(SimLock {
            fs: self.clone(),
            path: path.to_owned(),
        })))
    }
    fn open_file(&self, path: &Path) -> io::Result<Option<Arc<dyn ReadFile>>> {
        let s = self.inner.lock().unwrap();
        Ok(s.names.get(path).map(|&inode| {
            Arc::new(SimReader {
                fs: self.clone(),
                inode,
            }) as Arc<dyn ReadFile>
        }))
    }
    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut s = self.inner.lock().unwrap();
        s.tick()?;
        if s.names.contains_key(to) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                to.display().to_string(),
            ));
        }
        let i = s.inode(from)?;
        s.names.insert(to.to_owned(), i);
        Ok(())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let s = self.inner.lock().unwrap();
        Ok(s.names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        self.wait_for_gate();
        let mut s = self.inner.lock().unwrap();
        // The shortening, then its sync: either may fail.
        s.tick()?;
        s.tick()?;
        let i = s.inode(path)?;
        let inode = &mut s.inodes[i];
        inode.data.truncate(len as usize);
        inode.synced = inode.data.clone();
        Ok(())
    }
}

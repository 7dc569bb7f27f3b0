//! Plugin file watching: a change to a watched plugin's file becomes a
//! reload once the file has been quiet for [`DEBOUNCE`].
//!
//! The watch is on the file's directory, not on the file: `cp` and most
//! build tools write in place (modify, close-write), while editors,
//! `install` and atomic deployers write a new file and rename it over the
//! old one, which replaces the inode a watch on the file would follow. A
//! directory watch sees both, and a file deleted and created again.
//!
//! The watcher only notices; the engine decides. It asks for a reload with
//! the time of the first change of the burst, so the reload can be timed
//! from the change, and the reload does nothing when the file's bytes are
//! what is already running (a `touch`, or a file written back unchanged).

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use inotify::{Inotify, WatchDescriptor, WatchMask};

/// How long a file must stay quiet after a change before it is reloaded.
/// Threat: loading a file that is still being written (a slow copy) and
/// reloading once per write of a burst; a write that pauses longer than
/// this yields a refused reload, then a good one when it completes.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// How often the watcher thread looks at its stop flag and its timers.
const POLL: Duration = Duration::from_millis(50);

/// One watched plugin file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    /// The plugin's name, as the engine knows it.
    pub plugin: String,
    pub path: PathBuf,
}

/// A plugin file that changed and has been quiet since.
#[derive(Debug)]
pub struct Changed {
    pub plugin: String,
    /// When the first change of the burst was seen.
    pub since: Instant,
}

/// The watcher thread; dropping it stops the thread.
pub struct FileWatcher {
    /// The set to watch from now on, until the thread takes it: only the
    /// latest matters, so a newer one replaces one not yet taken.
    wanted: Arc<Mutex<Option<Vec<Watched>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FileWatcher {
    /// Starts watching nothing; [`FileWatcher::set`] says what to watch. Each
    /// change is handed to `notify`, on the watcher's thread.
    pub fn start(notify: impl FnMut(Changed) + Send + 'static) -> std::io::Result<FileWatcher> {
        let inotify = Inotify::init()?;
        let wanted = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Watching {
            inotify,
            dirs: HashMap::new(),
            files: Vec::new(),
            pending: HashMap::new(),
        };
        let (flag, updates) = (stop.clone(), wanted.clone());
        let thread = std::thread::Builder::new()
            .name("dphost-watch".into())
            .spawn(move || state.run(&updates, &flag, notify))?;
        Ok(FileWatcher {
            wanted,
            stop,
            thread: Some(thread),
        })
    }

    /// Replaces the set of watched files.
    pub fn set(&self, files: Vec<Watched>) {
        *self.wanted.lock().unwrap_or_else(|e| e.into_inner()) = Some(files);
    }
}

impl Drop for FileWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct Watching {
    inotify: Inotify,
    /// Watched directories.
    dirs: HashMap<PathBuf, WatchDescriptor>,
    /// Watched files: the directory's watch, the file name, the plugin.
    files: Vec<(WatchDescriptor, OsString, String)>,
    /// Plugins whose file changed: first and last change of the burst.
    pending: HashMap<String, (Instant, Instant)>,
}

/// What a directory watch listens for: a file written and closed, renamed
/// in, created, or its attributes or contents changed.
fn mask() -> WatchMask {
    WatchMask::CLOSE_WRITE
        | WatchMask::MOVED_TO
        | WatchMask::CREATE
        | WatchMask::MODIFY
        | WatchMask::ATTRIB
}

impl Watching {
    fn run(
        mut self,
        updates: &Mutex<Option<Vec<Watched>>>,
        stop: &AtomicBool,
        mut notify: impl FnMut(Changed),
    ) {
        let mut buffer = vec![0u8; 64 << 10];
        while !stop.load(Ordering::Relaxed) {
            let files = updates.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(files) = files {
                self.watch(files);
            }
            if wait_readable(&self.inotify, POLL) {
                self.read(&mut buffer);
            }
            let now = Instant::now();
            let quiet: Vec<String> = self
                .pending
                .iter()
                .filter(|(_, (_, last))| now.duration_since(*last) >= DEBOUNCE)
                .map(|(plugin, _)| plugin.clone())
                .collect();
            for plugin in quiet {
                if let Some((since, _)) = self.pending.remove(&plugin) {
                    notify(Changed { plugin, since });
                }
            }
        }
    }

    /// Watches the directories of `files`, and only those.
    fn watch(&mut self, files: Vec<Watched>) {
        let mut wanted: HashMap<PathBuf, Vec<(OsString, String)>> = HashMap::new();
        for file in files {
            let (Some(dir), Some(name)) = (parent(&file.path), file.path.file_name()) else {
                tracing::warn!(path = %file.path.display(), "cannot watch a path without a file name");
                continue;
            };
            wanted
                .entry(dir)
                .or_default()
                .push((name.to_os_string(), file.plugin));
        }
        let gone: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|dir| !wanted.contains_key(*dir))
            .cloned()
            .collect();
        for dir in gone {
            if let Some(wd) = self.dirs.remove(&dir) {
                let _ = self.inotify.watches().remove(wd);
            }
        }
        self.files.clear();
        for (dir, names) in wanted {
            let wd = match self.dirs.get(&dir) {
                Some(wd) => wd.clone(),
                None => match self.inotify.watches().add(&dir, mask()) {
                    Ok(wd) => {
                        self.dirs.insert(dir.clone(), wd.clone());
                        wd
                    }
                    Err(e) => {
                        tracing::warn!(dir = %dir.display(), "cannot watch plugin files here: {e}");
                        continue;
                    }
                },
            };
            for (name, plugin) in names {
                self.files.push((wd.clone(), name, plugin));
            }
        }
        let live: Vec<&String> = self.files.iter().map(|(_, _, p)| p).collect();
        self.pending.retain(|plugin, _| live.contains(&plugin));
    }

    /// Takes what inotify has, marking the plugins whose file it concerns.
    fn read(&mut self, buffer: &mut [u8]) {
        let events = match self.inotify.read_events(buffer) {
            Ok(events) => events,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) => {
                tracing::warn!("reading file changes: {e}");
                return;
            }
        };
        let now = Instant::now();
        for event in events {
            let Some(name) = event.name else { continue };
            for (_, _, plugin) in self
                .files
                .iter()
                .filter(|(wd, file, _)| *wd == event.wd && file.as_os_str() == name)
            {
                self.pending
                    .entry(plugin.clone())
                    .and_modify(|(_, last)| *last = now)
                    .or_insert((now, now));
            }
        }
    }
}

/// The directory a file is in; the current one for a bare file name.
fn parent(path: &Path) -> Option<PathBuf> {
    match path.parent() {
        Some(dir) if dir.as_os_str().is_empty() => Some(PathBuf::from(".")),
        Some(dir) => Some(dir.to_path_buf()),
        None => None,
    }
}

/// Waits until inotify has something to read, or `timeout` passes.
fn wait_readable(inotify: &Inotify, timeout: Duration) -> bool {
    let mut fd = libc::pollfd {
        fd: inotify.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let ready = unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
    ready > 0 && fd.revents & libc::POLLIN != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_channel::{Receiver, unbounded};

    fn watcher(files: &[(&str, &Path)]) -> (FileWatcher, Receiver<Changed>) {
        let (tx, rx) = unbounded();
        let watcher = FileWatcher::start(move |c| {
            let _ = tx.send(c);
        })
        .unwrap();
        watcher.set(
            files
                .iter()
                .map(|(plugin, path)| Watched {
                    plugin: plugin.to_string(),
                    path: path.to_path_buf(),
                })
                .collect(),
        );
        std::thread::sleep(POLL * 3);
        (watcher, rx)
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("dphost-watch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A write in place, and a write to a temporary file renamed over the
    /// watched one, each give one change for that plugin only; a file of
    /// the same directory that is not watched gives none.
    #[test]
    fn write_in_place_and_rename_each_give_one_change() {
        let dir = scratch("kinds");
        let (a, b) = (dir.join("a.wasm"), dir.join("b.wasm"));
        std::fs::write(&a, b"one").unwrap();
        std::fs::write(&b, b"one").unwrap();
        let (_watcher, changes) = watcher(&[("a", &a), ("b", &b)]);

        for chunk in 0..5 {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
            f.write_all(&[chunk; 100]).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
        let change = changes.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(change.plugin, "a");
        assert!(
            changes.recv_timeout(DEBOUNCE * 3).is_err(),
            "one burst, one change"
        );

        let tmp = dir.join(".b.wasm.tmp");
        std::fs::write(&tmp, b"two").unwrap();
        std::fs::rename(&tmp, &b).unwrap();
        let change = changes.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(change.plugin, "b");
        std::fs::write(dir.join("other.wasm"), b"x").unwrap();
        assert!(
            changes.recv_timeout(DEBOUNCE * 3).is_err(),
            "unwatched file"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A file no longer in the set is no longer watched.
    #[test]
    fn unwatched_files_are_forgotten() {
        let dir = scratch("set");
        let a = dir.join("a.wasm");
        std::fs::write(&a, b"one").unwrap();
        let (watcher, changes) = watcher(&[("a", &a)]);
        watcher.set(Vec::new());
        std::thread::sleep(POLL * 3);
        std::fs::write(&a, b"two").unwrap();
        assert!(changes.recv_timeout(DEBOUNCE * 3).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! Compiled code on disk. A component compiles once per content and engine:
//! the key is the SHA-256 of the file and the engine's fingerprint (wasmtime
//! version and every setting that changes generated code), so a second load
//! of the same file skips Cranelift entirely.
//!
//! Entries are written to a temporary file and renamed into place, so a
//! reader never sees half an entry; the directory is created mode 0700
//! because loading an entry trusts its contents as native code.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use wasmtime::Engine as WasmEngine;
use wasmtime::component::Component;

/// The wasmtime version the cache keys include.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Why the code cache could not be opened or an entry written. Each
/// message names the path; the system's reason is the source.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache directory could not be created (permissions, read-only
    /// file system, a file in the way).
    #[error("creating code cache directory {}", dir.display())]
    CreateDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// wasmtime could not serialize the compiled component.
    #[error("serializing compiled code")]
    Serialize(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The temporary file for a new entry could not be created.
    #[error("creating {}", path.display())]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Writing or syncing the temporary file failed (disk full, I/O error).
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The finished temporary file could not be renamed into place.
    #[error("renaming into {}", path.display())]
    Rename {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A directory of compiled components for one engine configuration.
#[derive(Debug)]
pub struct CodeCache {
    dir: PathBuf,
}

impl CodeCache {
    /// The cache under `root`, in a subdirectory for this engine's fingerprint.
    pub fn open(root: &Path, engine: &WasmEngine) -> Result<CodeCache, CacheError> {
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let dir = root.join(format!(
            "wasmtime-{WASMTIME_VERSION}-{:016x}",
            hasher.finish()
        ));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|source| CacheError::CreateDir {
                dir: dir.clone(),
                source,
            })?;
        Ok(CodeCache { dir })
    }

    /// The default root: `$DPHOST_CACHE_DIR`, else `$XDG_CACHE_HOME/dphost`,
    /// else `~/.cache/dphost`, else a directory under the system temp dir.
    pub fn default_root() -> PathBuf {
        if let Some(dir) = std::env::var_os("DPHOST_CACHE_DIR") {
            return PathBuf::from(dir);
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(dir).join("dphost");
        }
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(".cache").join("dphost");
        }
        std::env::temp_dir().join("dphost-cache")
    }

    fn entry(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}.cwasm"))
    }

    /// The compiled component for this content, if cached and loadable. An
    /// entry that fails to load is removed so the next load rewrites it.
    pub fn load(&self, engine: &WasmEngine, sha256: &str) -> Option<Component> {
        let path = self.entry(sha256);
        if !path.exists() {
            return None;
        }
        // SAFETY: entries are written only by `store` below, from
        // `Component::serialize` of this same engine configuration (the
        // directory is keyed by its fingerprint), into a 0700 directory.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "discarding unloadable cache entry: {e:#}");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes the compiled form of a component. Failure to write is not
    /// fatal to the load: the caller logs it and goes on.
    pub fn store(&self, sha256: &str, component: &Component) -> Result<(), CacheError> {
        // wasmtime's error is not a `std::error::Error`; its boxed form is,
        // and keeps the chain of causes.
        let bytes = component
            .serialize()
            .map_err(|e| CacheError::Serialize(e.into_boxed_dyn_error()))?;
        let path = self.entry(sha256);
        let tmp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        let mut file = fs::File::create(&tmp).map_err(|source| CacheError::Create {
            path: tmp.clone(),
            source,
        })?;
        file.write_all(&bytes)
            .and_then(|()| file.sync_data())
            .map_err(|source| CacheError::Write {
                path: tmp.clone(),
                source,
            })?;
        fs::rename(&tmp, &path).map_err(|source| CacheError::Rename { path, source })
    }
}

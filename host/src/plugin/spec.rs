//! A plugin as the configuration gives it: which file, under what name,
//! with what config string and limits, and whether its file is watched.
//! Plain data; what makes an instance of it is [`super::Runtime`].

use std::path::PathBuf;

use super::Limits;

/// A plugin as the configuration gives it: the file, the name that
/// overrides its own, the config string for `init`, its limits, and whether
/// its file is watched for changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginSpec {
    pub path: PathBuf,
    pub name: Option<String>,
    pub config: String,
    pub limits: Limits,
    /// Reload when the file changes on disk.
    pub watch: bool,
}

impl PluginSpec {
    /// A plugin given by path alone, with default limits, watched.
    pub fn new(path: impl Into<PathBuf>) -> PluginSpec {
        PluginSpec {
            path: path.into(),
            name: None,
            config: String::new(),
            limits: Limits::default(),
            watch: true,
        }
    }

    /// What tells two plugins of one configuration apart when it is read
    /// again: the name it gives, else the file.
    pub fn key(&self) -> String {
        match &self.name {
            Some(name) => format!("name {name}"),
            None => format!("file {}", self.path.display()),
        }
    }
}

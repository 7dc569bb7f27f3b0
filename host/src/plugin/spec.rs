//! A plugin as the configuration gives it: which file, under what name,
//! with what config string and limits, and whether its file is watched.
//! Plain data; what makes an instance of it is [`super::Runtime`].

use std::collections::BTreeMap;
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
    /// The capabilities it is granted; none by default.
    pub grants: Grants,
}

/// What a plugin may use beyond its events and its log: the dataplane's
/// BPF maps it is granted, by name. Nothing is granted by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grants {
    pub maps: BTreeMap<String, Access>,
}

/// A map grant that is not written as `"NAME"` or `"NAME:read"`.
#[derive(Debug, thiserror::Error)]
pub enum GrantSyntax {
    #[error(
        "map grant {entry:?}: unknown access {access:?} (\"NAME\" grants reads and writes, \"NAME:read\" reads only)"
    )]
    Access { entry: String, access: String },
    #[error("map grant {0:?}: a map's name is letters, digits and _")]
    Name(String),
    #[error("map {0:?} is granted twice")]
    Twice(String),
}

/// How far a grant goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Lookups, keys, updates and deletes.
    ReadWrite,
    /// Lookups and keys only.
    Read,
}

impl Grants {
    /// Map grants as the configuration writes them: `"NAME"` (read and
    /// write) or `"NAME:read"`, each map once.
    pub fn maps<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Grants, GrantSyntax> {
        let mut maps = BTreeMap::new();
        for entry in entries {
            let (name, access) = match entry.split_once(':') {
                None => (entry, Access::ReadWrite),
                Some((name, "read")) => (name, Access::Read),
                Some((_, access)) => {
                    return Err(GrantSyntax::Access {
                        entry: entry.to_string(),
                        access: access.to_string(),
                    });
                }
            };
            let valid =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(GrantSyntax::Name(entry.to_string()));
            }
            if maps.insert(name.to_string(), access).is_some() {
                return Err(GrantSyntax::Twice(name.to_string()));
            }
        }
        Ok(Grants { maps })
    }

    /// As the configuration writes them, for messages.
    pub fn describe_maps(&self) -> String {
        let entries: Vec<String> = self
            .maps
            .iter()
            .map(|(name, access)| match access {
                Access::ReadWrite => format!("{name:?}"),
                Access::Read => format!("\"{name}:read\""),
            })
            .collect();
        format!("[{}]", entries.join(", "))
    }
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
            grants: Grants::default(),
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

#[cfg(test)]
mod tests {
    use super::{Access, Grants};

    #[test]
    fn map_grants_as_written() {
        let grants = Grants::maps(["routes4", "stats:read"]).unwrap();
        assert_eq!(grants.maps["routes4"], Access::ReadWrite);
        assert_eq!(grants.maps["stats"], Access::Read);
        assert_eq!(grants.describe_maps(), r#"["routes4", "stats:read"]"#);
        for (bad, why) in [
            (vec!["a", "a:read"], "granted twice"),
            (vec!["a:write"], "unknown access"),
            (vec![""], "letters, digits"),
            (vec!["a-b"], "letters, digits"),
        ] {
            let e = Grants::maps(bad.iter().copied()).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}

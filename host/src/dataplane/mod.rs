//! The operator's BPF dataplane (issue 12): the object `[dataplane]`
//! names, loaded with aya; its XDP program attached in native mode to the
//! configured interfaces of dphost's namespace; its maps pinned under
//! `pin_dir/maps` on a bpffs (one is mounted there if needed), so that
//! plugins granted them can program them, and so that they outlive dphost.
//!
//! On exit the program is detached, unless `keep = true`: then each
//! interface's link is pinned under `pin_dir/links`, and the interfaces go
//! on forwarding with the last state. The next start takes the program's
//! place on those links (the maps, found pinned, are reused) and the
//! plugins' replay brings the maps up to date.

mod bpf;
pub mod maps;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aya::maps::{MapData, MapError};
use aya::programs::links::{FdLink, LinkError, PinnedLink};
use aya::programs::xdp::{XdpLink, XdpLinkId};
use aya::programs::{ProgramError, Xdp, XdpMode};
use aya::{Ebpf, EbpfError, EbpfLoader};

use maps::{BpfMap, MapDef, MapSet};

use crate::netlink::socket::Netns;

/// bpffs's magic number, as `statfs` reports it.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// What `[dataplane]` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneSpec {
    /// The BPF object (ELF, from `clang -target bpf`).
    pub object: PathBuf,
    /// Its XDP program, by function name.
    pub program: String,
    /// Interfaces of dphost's namespace to attach it to.
    pub interfaces: Vec<String>,
    /// Where maps (`maps/NAME`) and kept links (`links/INTERFACE`) are pinned.
    pub pin_dir: PathBuf,
    /// Keep forwarding with the last state when dphost exits.
    pub keep: bool,
}

/// Why the dataplane could not start; each names the file, program,
/// directory or interface.
#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    #[error("reading the BPF object {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{} is not a BPF object", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: aya_obj::ParseError,
    },
    #[error("{} has no program {program:?} (it has: {found})", path.display())]
    NoProgram {
        path: PathBuf,
        program: String,
        found: String,
    },
    #[error("{}: {program:?} is not an XDP program", path.display())]
    NotXdp { path: PathBuf, program: String },
    #[error("[dataplane] names no interface to attach to")]
    NoInterface,
    #[error("preparing the pin directory {}", dir.display())]
    PinDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("loading {} into the kernel", path.display())]
    Load {
        path: PathBuf,
        #[source]
        source: Box<EbpfError>,
    },
    #[error("loading program {program:?} into the kernel")]
    Program {
        program: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("attaching {program:?} to {interface:?} in native mode")]
    Attach {
        program: String,
        interface: String,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("taking over the link {} a previous dphost kept", path.display())]
    KeptLink {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("entering the network namespace")]
    Netns(#[source] io::Error),
    #[error("counting the possible CPUs, which size per-CPU values")]
    Cpus(#[source] io::Error),
    #[error("opening the pinned map {}", pin.display())]
    Pinned {
        pin: PathBuf,
        #[source]
        source: Box<MapError>,
    },
    #[error(
        "the map pinned at {} is not the object's {name:?}: the kernel's is {kernel}, the object's {object}; it was made for another object (remove the pin to start afresh)",
        pin.display()
    )]
    PinMismatch {
        name: String,
        pin: PathBuf,
        kernel: String,
        object: String,
    },
}

/// Checks the object without the kernel: it parses and has the XDP
/// program. Returns its maps' definitions ([`object_maps`]). `run
/// --check-config` calls it.
pub fn check(spec: &DataplaneSpec) -> Result<Vec<MapDef>, DataplaneError> {
    let path = &spec.object;
    let object = parse(path)?;
    let Some(program) = object.programs.get(&spec.program) else {
        let mut found: Vec<&str> = object.programs.keys().map(String::as_str).collect();
        found.sort();
        return Err(DataplaneError::NoProgram {
            path: path.clone(),
            program: spec.program.clone(),
            found: found.join(", "),
        });
    };
    if !matches!(program.section, aya_obj::ProgramSection::Xdp { .. }) {
        return Err(DataplaneError::NotXdp {
            path: path.clone(),
            program: spec.program.clone(),
        });
    }
    if spec.interfaces.is_empty() {
        return Err(DataplaneError::NoInterface);
    }
    map_defs(&object)
}

/// The maps a BPF object defines, as the kernel will make them, sorted by
/// name (the data sections clang makes, `.rodata` and such, left out).
pub fn object_maps(path: &Path) -> Result<Vec<MapDef>, DataplaneError> {
    map_defs(&parse(path)?)
}

fn parse(path: &Path) -> Result<aya_obj::Object, DataplaneError> {
    let bytes = std::fs::read(path).map_err(|source| DataplaneError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    aya_obj::Object::parse(&bytes).map_err(|source| DataplaneError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

fn map_defs(object: &aya_obj::Object) -> Result<Vec<MapDef>, DataplaneError> {
    let mut maps: Vec<MapDef> = object
        .maps
        .iter()
        .filter(|(name, _)| !name.starts_with('.'))
        .map(|(name, map)| MapDef::from_object(name, map))
        .collect::<io::Result<_>>()
        .map_err(DataplaneError::Cpus)?;
    maps.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(maps)
}

/// The loaded object and its attachments; detached on drop unless kept.
pub struct Dataplane {
    ebpf: Ebpf,
    spec: DataplaneSpec,
    links: Vec<(String, XdpLinkId)>,
    maps: Arc<MapSet>,
}

impl Dataplane {
    /// Loads the object (its maps pinned, or reused where pinned already),
    /// and attaches its program to every interface, in `netns`.
    pub fn start(spec: &DataplaneSpec, netns: &Netns) -> Result<Dataplane, DataplaneError> {
        let defs = check(spec)?;
        on_bpffs(&spec.pin_dir).map_err(|source| DataplaneError::PinDir {
            dir: spec.pin_dir.clone(),
            source,
        })?;
        let (maps_dir, links_dir) = (spec.pin_dir.join("maps"), spec.pin_dir.join("links"));
        for dir in [&maps_dir, &links_dir] {
            std::fs::create_dir_all(dir).map_err(|source| DataplaneError::PinDir {
                dir: dir.clone(),
                source,
            })?;
        }
        let mut loader = EbpfLoader::new();
        for def in &defs {
            loader.map_pin_path(&def.name, maps_dir.join(&def.name));
        }
        let mut ebpf = loader
            .load_file(&spec.object)
            .map_err(|source| DataplaneError::Load {
                path: spec.object.clone(),
                source: Box::new(source),
            })?;
        let program = |source| DataplaneError::Program {
            program: spec.program.clone(),
            source: Box::new(source),
        };
        let xdp: &mut Xdp = ebpf
            .program_mut(&spec.program)
            .ok_or_else(|| DataplaneError::NotXdp {
                path: spec.object.clone(),
                program: spec.program.clone(),
            })?
            .try_into()
            .map_err(program)?;
        xdp.load().map_err(program)?;
        let maps = Arc::new(MapSet::new(
            defs.iter()
                .map(|def| pinned(def, &maps_dir, netns))
                .collect::<Result<Vec<_>, _>>()?,
        ));
        let mut links = Vec::new();
        for interface in &spec.interfaces {
            let kept = links_dir.join(interface);
            let id = netns
                .enter(|| attach(xdp, interface, &kept, &spec.program))
                .map_err(DataplaneError::Netns)??;
            links.push((interface.clone(), id));
        }
        tracing::info!(
            object = %spec.object.display(),
            program = %spec.program,
            interfaces = ?spec.interfaces,
            pins = %spec.pin_dir.display(),
            "dataplane attached"
        );
        Ok(Dataplane {
            ebpf,
            spec: spec.clone(),
            links,
            maps,
        })
    }

    /// The object's maps, as pinned under `pin_dir/maps`.
    pub fn maps(&self) -> &Arc<MapSet> {
        &self.maps
    }
}

/// The map `def` as pinned in `dir`, checked against the object: aya
/// reuses a pinned map of the same name without comparing them, and a map
/// left by another object would take writes of the wrong layout.
fn pinned(def: &MapDef, dir: &Path, netns: &Netns) -> Result<BpfMap, DataplaneError> {
    let pin = dir.join(&def.name);
    let opened = |source| DataplaneError::Pinned {
        pin: pin.clone(),
        source: Box::new(source),
    };
    let data = MapData::from_pin(&pin).map_err(opened)?;
    let info = data.info().map_err(opened)?;
    let kind = info.map_type().map_or(0, |kind| kind as u32);
    let kernel = MapDef::new(
        &def.name,
        kind,
        info.key_size(),
        info.value_size(),
        info.max_entries(),
    )
    .map_err(DataplaneError::Cpus)?;
    if kernel != *def {
        let show = |d: &MapDef| {
            format!(
                "{} with {}-byte keys, {}-byte values, {} entries",
                d.kind_name(),
                d.key_size,
                d.value_size,
                d.max_entries
            )
        };
        return Err(DataplaneError::PinMismatch {
            name: def.name.clone(),
            pin,
            kernel: show(&kernel),
            object: show(def),
        });
    }
    Ok(BpfMap::kernel(kernel, data, netns))
}

/// Attaches `xdp` to `interface` (in the namespace the thread is in): in
/// the place of the program on the link a previous dphost kept at `kept`,
/// else anew.
fn attach(
    xdp: &mut Xdp,
    interface: &str,
    kept: &Path,
    program: &str,
) -> Result<XdpLinkId, DataplaneError> {
    let attach_error = |source| DataplaneError::Attach {
        program: program.to_string(),
        interface: interface.to_string(),
        source: Box::new(source),
    };
    if !kept.exists() {
        return xdp.attach(interface, XdpMode::Driver).map_err(attach_error);
    }
    let link_error = |source: Box<dyn std::error::Error + Send + Sync>| DataplaneError::KeptLink {
        path: kept.to_path_buf(),
        source,
    };
    let link: FdLink = PinnedLink::from_pin(kept)
        .map_err(|e| link_error(e.into()))?
        .unpin()
        .map_err(|e| link_error(e.into()))?;
    let link = XdpLink::try_from(link).map_err(|e: LinkError| link_error(e.into()))?;
    xdp.attach_to_link(link).map_err(attach_error)
}

impl Drop for Dataplane {
    /// Detaches (the links go with the program), or pins each link for
    /// the interfaces to go on forwarding.
    fn drop(&mut self) {
        if !self.spec.keep {
            tracing::info!("dataplane detached");
            return;
        }
        let Some(xdp) = self
            .ebpf
            .program_mut(&self.spec.program)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
        else {
            return;
        };
        for (interface, id) in self.links.drain(..) {
            let path = self.spec.pin_dir.join("links").join(&interface);
            let kept = xdp
                .take_link(id)
                .map_err(|e| e.to_string())
                .and_then(|link| FdLink::try_from(link).map_err(|e| e.to_string()))
                .and_then(|link| link.pin(&path).map_err(|e| e.to_string()));
            match kept {
                Ok(_) => {
                    tracing::info!(interface, pin = %path.display(), "dataplane kept attached")
                }
                Err(why) => {
                    tracing::warn!(interface, "dataplane could not be kept attached: {why}")
                }
            }
        }
    }
}

/// Makes `dir` a directory on a bpffs: if the nearest existing directory
/// on its path is not on one, a bpffs is mounted there (as systemd mounts
/// /sys/fs/bpf at boot), then the rest is created.
fn on_bpffs(dir: &Path) -> io::Result<()> {
    let mut existing = dir;
    while !existing.exists() {
        existing = existing
            .parent()
            .ok_or_else(|| io::Error::other("no existing directory on its path"))?;
    }
    if !is_bpffs(existing)? {
        mount_bpffs(existing)?;
        tracing::info!(dir = %existing.display(), "mounted a bpffs for the dataplane's pins");
    }
    std::fs::create_dir_all(dir)
}

fn is_bpffs(path: &Path) -> io::Result<bool> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: `statfs` is plain old data; all zeroes is a valid value.
    let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: statfs writes into the struct we own; the path is a valid C
    // string.
    if unsafe { libc::statfs(c.as_ptr(), &mut fs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fs.f_type as i64 == BPF_FS_MAGIC)
}

fn mount_bpffs(at: &Path) -> io::Result<()> {
    let target = std::ffi::CString::new(at.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::other("a path with a NUL byte"))?;
    // SAFETY: every argument is a valid C string or null, as mount(2) takes.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

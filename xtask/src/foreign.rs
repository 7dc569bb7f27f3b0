//! The example plugins in other languages, and their pinned toolchains.
//!
//! | plugin | source | toolchain |
//! |---|---|---|
//! | `linkstate` | `plugins/linkstate-c` | wit-bindgen's C generator, Debian's clang and lld for wasm32, `wasm-tools component new` |
//! | `neighbours` | `plugins/neighbours-py` | componentize-py from PyPI |
//! | `routes` | `plugins/routes-py` | componentize-py from PyPI, on API 0.2.0 (`wit/0.2.0`) |
//! | `churn` | `plugins/churn-js` | componentize-js from the npm registry |
//!
//! Every toolchain but clang goes under `target/tools/`, at the version
//! pinned here, the first time a build needs it; clang and lld come from
//! Debian's packages, installed with apt-get when running as root. When a
//! toolchain cannot be installed, the build stops and says which one and the
//! command that installs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::{Context, Result, bail};

use crate::{root, run};

/// wit-bindgen's CLI, for its C generator: the same release as the Rust
/// guest crate, so both read the WIT alike.
const WIT_BINDGEN_CLI: &str = "0.60.0";
/// wasm-tools, for `component new`.
const WASM_TOOLS: &str = "1.254.2";
/// componentize-py (PyPI).
const COMPONENTIZE_PY: &str = "0.25.1";
/// componentize-js (npm); `plugins/churn-js/package-lock.json` pins it and
/// everything it pulls in. 0.23, not the 0.22 that jco 1.x bundles: 0.22
/// leaks every list argument.
const COMPONENTIZE_JS: &str = "0.23.0";
/// Debian's clang and lld (bookworm's LLVM 14); any clang from 14 on with
/// wasm-ld works.
const CLANG: &str = "clang-14";
const CLANG_PACKAGES: [&str; 2] = ["clang-14", "lld-14"];

/// The installed toolchains.
pub struct Tools {
    dir: PathBuf,
}

impl Tools {
    pub fn new(target: &Path) -> Tools {
        Tools {
            dir: target.join("tools"),
        }
    }

    fn wit_bindgen(&self) -> PathBuf {
        self.dir.join("cargo/bin/wit-bindgen")
    }

    fn wasm_tools(&self) -> PathBuf {
        self.dir.join("cargo/bin/wasm-tools")
    }

    fn componentize_py(&self) -> PathBuf {
        self.dir.join("py/bin/componentize-py")
    }

    fn componentize_js(&self) -> PathBuf {
        self.dir.join("js/node_modules/.bin/componentize-js")
    }

    /// Installs every toolchain that is missing or at another version.
    pub fn ensure(&self) -> Result<()> {
        self.cargo_tool(
            "wit-bindgen-cli",
            WIT_BINDGEN_CLI,
            &self.wit_bindgen(),
            &["--no-default-features", "--features", "c"],
        )?;
        self.cargo_tool(
            "wasm-tools",
            WASM_TOOLS,
            &self.wasm_tools(),
            &["--no-default-features", "--features", "component"],
        )?;
        ensure_clang()?;
        self.python()?;
        self.node()
    }

    fn cargo_tool(&self, krate: &str, version: &str, bin: &Path, features: &[&str]) -> Result<()> {
        if reports_version(bin, version) {
            return Ok(());
        }
        eprintln!(
            "xtask: installing {krate} {version} into {}",
            self.dir.display()
        );
        run(crate::cargo()
            .args(["install", "--locked", "--quiet", "--root"])
            .arg(self.dir.join("cargo"))
            .arg(format!("{krate}@{version}"))
            .args(features))
        .with_context(|| {
            format!("installing {krate} {version} (by hand: cargo install --locked {krate}@{version} {})", features.join(" "))
        })
    }

    fn python(&self) -> Result<()> {
        let bin = self.componentize_py();
        if reports_version(&bin, COMPONENTIZE_PY) {
            return Ok(());
        }
        let how = format!(
            "the Python plugin needs Python 3.9 or later with venv (apt-get install python3 python3-venv), \
             then componentize-py {COMPONENTIZE_PY} (pip install componentize-py=={COMPONENTIZE_PY})"
        );
        eprintln!(
            "xtask: installing componentize-py {COMPONENTIZE_PY} into {}",
            self.dir.display()
        );
        let venv = self.dir.join("py");
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv)).context(how.clone())?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY}")))
        .context(how)
    }

    fn node(&self) -> Result<()> {
        let bin = self.componentize_js();
        if reports_version(&bin, COMPONENTIZE_JS) {
            return Ok(());
        }
        let how = format!(
            "the JavaScript plugin needs Node.js 18 or later with npm (apt-get install nodejs npm), \
             then componentize-js {COMPONENTIZE_JS} (npm install @bytecodealliance/componentize-js@{COMPONENTIZE_JS})"
        );
        eprintln!(
            "xtask: installing componentize-js {COMPONENTIZE_JS} into {}",
            self.dir.display()
        );
        let prefix = self.dir.join("js");
        std::fs::create_dir_all(&prefix)?;
        let project = root().join("plugins/churn-js");
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(project.join(file), prefix.join(file))
                .with_context(|| format!("copying plugins/churn-js/{file}"))?;
        }
        run(Command::new("npm")
            .args([
                "ci",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&prefix))
        .context(how)
    }
}

/// True when `bin --version` runs and prints `version`.
fn reports_version(bin: &Path, version: &str) -> bool {
    Command::new(bin)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains(version)
        })
}

/// clang for wasm32 and its linker, wasm-ld: installed from Debian's
/// packages when missing and running as root.
fn ensure_clang() -> Result<()> {
    ensure_debian(
        &CLANG_PACKAGES,
        clang_ready,
        &format!("the C plugin needs {CLANG} and wasm-ld"),
    )
}

/// Debian's `packages`, installed with apt-get when `ready` says they are
/// missing and running as root; else an error saying what to install.
fn ensure_debian(packages: &[&str], ready: fn() -> bool, needs: &str) -> Result<()> {
    if ready() {
        return Ok(());
    }
    let how = format!("{needs}: apt-get install {}", packages.join(" "));
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    if !root_user {
        bail!("{how}");
    }
    eprintln!("xtask: installing {} with apt-get", packages.join(" "));
    run(Command::new("apt-get").arg("update").arg("-qq")).context(how.clone())?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .context(how.clone())?;
    if !ready() {
        bail!("{how} (installed, but still missing)");
    }
    Ok(())
}

/// What the XDP router's tests run besides the kernel: `ping`, and
/// `ethtool` (a veth delivers XDP-redirected frames only with GRO on at its
/// peer). Installed from Debian when missing and running as root.
pub fn ensure_test_tools() -> Result<()> {
    ensure_debian(
        &["iputils-ping", "ethtool"],
        || answers("ping", "-V") && answers("ethtool", "--version"),
        "the XDP router's tests need ping and ethtool",
    )
}

/// True when `bin flag` runs and succeeds.
fn answers(bin: &str, flag: &str) -> bool {
    Command::new(bin)
        .arg(flag)
        .output()
        .is_ok_and(|out| out.status.success())
}

/// libbpf's headers (`bpf/bpf_helpers.h`), for the XDP example.
const LIBBPF_PACKAGES: [&str; 1] = ["libbpf-dev"];

fn libbpf_ready() -> bool {
    Path::new("/usr/include/bpf/bpf_helpers.h").is_file()
}

/// The example XDP router (`examples/xdp-router/xdp_router.c`), compiled
/// for BPF by clang-14 with libbpf's headers into `out/xdp_router.o`,
/// when older than its source.
pub fn build_bpf(out: &Path) -> Result<()> {
    let dir = root().join("examples/xdp-router");
    let object = out.join("xdp_router.o");
    if !stale(&object, &[&dir])? {
        return Ok(());
    }
    ensure_debian(
        &["clang-14"],
        || Command::new(CLANG).arg("--version").output().is_ok(),
        &format!("the XDP example needs {CLANG}"),
    )?;
    ensure_debian(
        &LIBBPF_PACKAGES,
        libbpf_ready,
        "the XDP example needs libbpf's headers",
    )?;
    eprintln!("xtask: building examples/xdp-router ({CLANG} -target bpf)");
    run(Command::new(CLANG)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg("-c")
        .arg(dir.join("xdp_router.c"))
        .arg("-o")
        .arg(&object))
}

fn clang_ready() -> bool {
    Command::new(CLANG)
        .arg("-print-prog-name=wasm-ld")
        .output()
        .is_ok_and(|out| {
            out.status.success() && Path::new(String::from_utf8_lossy(&out.stdout).trim()).is_file()
        })
}

/// Builds the four plugins into `out`, each only when its component is
/// older than its sources or the WIT.
pub fn build(tools: &Tools, target: &Path, out: &Path) -> Result<()> {
    let wit = root().join("wit");
    let work = target.join("foreign/linkstate-c");
    rebuild(
        &wit,
        "linkstate-c",
        &out.join("linkstate.wasm"),
        &format!("C, {CLANG}, wit-bindgen {WIT_BINDGEN_CLI}"),
        |src, component| build_c(tools, &wit, src, &work, component),
    )?;
    rebuild(
        &wit,
        "neighbours-py",
        &out.join("neighbours.wasm"),
        &format!("Python, componentize-py {COMPONENTIZE_PY}"),
        |src, component| componentize_py(tools, &wit, src, component),
    )?;
    let wit_0_2 = wit.join("0.2.0");
    rebuild(
        &wit_0_2,
        "routes-py",
        &out.join("routes.wasm"),
        &format!("Python, componentize-py {COMPONENTIZE_PY}, API 0.2.0"),
        |src, component| componentize_py(tools, &wit_0_2, src, component),
    )?;
    rebuild(
        &wit,
        "churn-js",
        &out.join("churn.wasm"),
        &format!("JavaScript, componentize-js {COMPONENTIZE_JS}"),
        |src, component| {
            run(Command::new(tools.componentize_js())
                .arg(src.join("churn.js"))
                .arg("-w")
                .arg(&wit)
                .args(["-n", "plugin", "-d", "http", "fetch-event", "-o"])
                .arg(component))
        },
    )
}

/// A Python plugin (`app.py` in `src`) of the world `plugin` in `wit`.
fn componentize_py(tools: &Tools, wit: &Path, src: &Path, component: &Path) -> Result<()> {
    run(Command::new(tools.componentize_py())
        .arg("-d")
        .arg(wit)
        .args(["-w", "plugin", "componentize", "-p"])
        .arg(src)
        .args(["app", "-o"])
        .arg(component))
}

/// Runs `make(source dir, component)` for `plugins/DIR` when the component
/// is missing or older than any file there or in the WIT.
fn rebuild(
    wit: &Path,
    dir: &str,
    component: &Path,
    toolchain: &str,
    make: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<()> {
    let src = root().join("plugins").join(dir);
    if !stale(component, &[&src, wit])? {
        return Ok(());
    }
    eprintln!("xtask: building plugins/{dir} ({toolchain})");
    make(&src, component)
}

/// The C plugin, without a libc: bindings from wit-bindgen, a core module
/// from clang and wasm-ld, a component from `wasm-tools component new`.
fn build_c(tools: &Tools, wit: &Path, src: &Path, work: &Path, component: &Path) -> Result<()> {
    std::fs::create_dir_all(work)?;
    run(Command::new(tools.wit_bindgen())
        .arg("c")
        .arg(wit)
        .args(["--world", "plugin", "--out-dir"])
        .arg(work))?;
    let core = work.join("linkstate.core.wasm");
    run(Command::new(CLANG)
        .args([
            "--target=wasm32",
            "-std=c11",
            "-O2",
            "-mbulk-memory",
            "-ffreestanding",
            "-nostdlib",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,--no-entry",
        ])
        .arg("-I")
        .arg(src.join("include"))
        .arg("-I")
        .arg(work)
        .arg("-o")
        .arg(&core)
        .arg(src.join("linkstate.c"))
        .arg(src.join("rt.c"))
        .arg(work.join("plugin.c"))
        .arg(work.join("plugin_component_type.o")))?;
    run(Command::new(tools.wasm_tools())
        .args(["component", "new"])
        .arg(&core)
        .arg("-o")
        .arg(component))
}

/// True when `output` is missing or older than any file under `inputs`.
fn stale(output: &Path, inputs: &[&Path]) -> Result<bool> {
    let Ok(built) = std::fs::metadata(output).and_then(|m| m.modified()) else {
        return Ok(true);
    };
    let mut newest = SystemTime::UNIX_EPOCH;
    for input in inputs {
        newest = newest.max(newest_under(input)?);
    }
    Ok(newest > built)
}

fn newest_under(path: &Path) -> Result<SystemTime> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let mut newest = meta.modified()?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with('.') || n == "__pycache__")
            {
                continue;
            }
            newest = newest.max(newest_under(&entry.path())?);
        }
    }
    Ok(newest)
}

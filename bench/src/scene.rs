//! What the benchmarks share: a throwaway namespace with an addressed veth
//! pair and routes injected into it, the build's target directory, waiting
//! for the machine to be idle, and plugin file variants.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Family, InjectConfig, InjectReport, Interface, inject_routes, kernel_route_count};

/// The build's target directory (`CARGO_TARGET_DIR`, else the workspace's).
pub fn target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// `dphost run` (the release build) on `ns`, with its control API on
/// `control` (`unix:PATH`), the configuration file `config` if any, and
/// `extra` flags; warnings only on its standard error (see below).
pub fn spawn_dphost(
    ns: &Netns,
    control: &str,
    config: Option<&std::path::Path>,
    extra: &[&str],
) -> std::process::Child {
    let mut command = Command::new(target().join("release/dphost"));
    command.args(["run", "--netns", &ns.name, "--control", control]);
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    command
        .args(extra)
        // Warnings only, unless `DPHOST_BENCH_LOG` says (`dphost=debug`).
        .env(
            "RUST_LOG",
            std::env::var("DPHOST_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("starting dphost (cargo xtask build first)")
}

/// A namespace with one veth pair up and addressed, removed on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("dphost-bench-{tag}-{}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "cannot create a network namespace: the benchmarks need root"
        );
        let ns = Netns { name };
        for c in [
            "link set lo up",
            "link add d0 type veth peer name d1",
            "link set d0 up",
            "link set d1 up",
            "addr add 10.255.255.1/8 dev d0",
            "addr add 2001:db8:ffff::1/64 dev d0 nodad",
        ] {
            let ok = Command::new("ip")
                .args(["-n", &ns.name])
                .args(c.split(' '))
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {c}");
        }
        ns
    }

    /// Injects `count` routes via `d0` in the main table.
    pub fn inject(&self, family: Family, count: u64) -> InjectReport {
        let config = self.inject_config(family, count);
        let report = inject_routes(&config).expect("injecting routes");
        assert_eq!(report.errors, 0, "injector errors: {report}");
        report
    }

    /// An injection of `count` routes via `d0` into this namespace, to
    /// adjust before running it.
    pub fn inject_config(&self, family: Family, count: u64) -> InjectConfig {
        let mut config = InjectConfig::new(count);
        config.netns = Some(self.name.clone());
        config.family = family;
        config.interface = Some(Interface::Name("d0".into()));
        config.progress = true;
        config
    }

    /// Routes in the namespace's kernel, every table.
    pub fn routes(&self) -> usize {
        kernel_route_count(Some(&self.name), None).expect("counting kernel routes")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Waits (up to 60 s) until the machine is nearly idle: a namespace deleted
/// with a million routes is freed by the kernel in the background for
/// seconds, and would skew whatever is measured next.
pub fn wait_for_idle() {
    let busy_idle = || {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let cpu: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        let idle = cpu.get(3).copied().unwrap_or(0) + cpu.get(4).copied().unwrap_or(0);
        (cpu.iter().sum::<u64>(), idle)
    };
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) {
        let (total0, idle0) = busy_idle();
        std::thread::sleep(Duration::from_millis(500));
        let (total1, idle1) = busy_idle();
        let idle = (idle1 - idle0) as f64 / (total1 - total0).max(1) as f64;
        if idle > 0.9 {
            return;
        }
    }
}

/// A component's bytes with a custom section appended that holds `n`: a
/// different file (another hash, so a fresh compile) that behaves the same.
pub fn component_variant(component: &[u8], n: u64) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    const NAME: &[u8] = b"dphost-variant";
    let mut body = Vec::new();
    leb128(NAME.len(), &mut body);
    body.extend(NAME);
    body.extend(n.to_le_bytes());
    let mut bytes = component.to_vec();
    bytes.push(0); // a custom section
    leb128(body.len(), &mut bytes);
    bytes.extend(body);
    bytes
}

/// Peak and current resident memory of a process (`self` or a pid), in
/// MiB, from `/proc`.
pub fn memory(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kib("VmHWM:") / 1024.0, kib("VmRSS:") / 1024.0)
}

/// A progress bar on stderr for `total` `unit`s: count, rate, time left.
/// Hidden when stderr is not a terminal (CI logs stay clean).
pub fn progress_bar(total: u64, unit: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    let template = format!("{{bar:40}} {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{msg}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// One line of a chart: its name and its (x, y) points.
pub struct Line<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

/// Writes an SVG line chart (plotters) of `lines` over time, with a dashed
/// vertical mark at each of `marks` (seconds) labelled `mark_name`.
pub fn chart(
    path: &std::path::Path,
    title: &str,
    y_label: &str,
    lines: &[Line<'_>],
    marks: &[f64],
    mark_name: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let all = || lines.iter().flat_map(|l| l.points.iter());
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all().map(|p| p.1).fold(1.0, f64::max) * 1.05;
    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(y_label)
        .y_label_formatter(&|y| format!("{:.0}k", y / 1000.0))
        .draw()?;
    let colours = [BLUE, RGBColor(230, 120, 0), GREEN, MAGENTA];
    for (line, colour) in lines.iter().zip(colours.iter().cycle()) {
        let style = colour.stroke_width(2);
        chart
            .draw_series(LineSeries::new(line.points.iter().copied(), style))?
            .label(line.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    }
    for (i, at) in marks.iter().enumerate() {
        let style = RED.mix(0.6).stroke_width(1);
        let drawn = chart.draw_series(DashedLineSeries::new(
            [(*at, 0.0), (*at, y_max)],
            6,
            4,
            style,
        ))?;
        if i == 0 {
            drawn
                .label(mark_name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

//! The markdown the bench prints: the machine, the relay table, the
//! failover runs.

use crate::failover::Failover;
use crate::relay::Path;
use crate::setup::REDIS;
use crate::stats::{ms, Samples};
use crate::stream::median;
use crate::Opts;

#[derive(Default)]
pub struct Report {
    pub relay: Option<(Path, Path)>,
    pub failovers: Vec<Failover>,
    /// The instance's containers at the end (0 expected).
    pub left: Option<usize>,
}

pub fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    let mem = sh("awk '/MemTotal/ {printf \"%.0f GiB\", $2/1048576}' /proc/meminfo");
    format!(
        "{} · {} cores ({}) · {mem} · Docker {} · Linux {} · redis-server {}",
        sh("date -u '+%Y-%m-%d %H:%M UTC'"),
        sh("nproc"),
        cpu.trim(),
        sh("docker version --format '{{.Server.Version}}'"),
        sh("uname -r"),
        sh(&format!(
            "{REDIS} --version | grep -o 'v=[0-9.]*' | cut -c3-"
        )),
    )
}

fn ratio(relayed: f64, direct: f64) -> String {
    format!("{:.2}×", relayed / direct)
}

pub fn render(o: &Opts, r: &Report, commit: &str, load_before: &str) -> String {
    let mut s = format!(
        "{}\n\n`cargo bench --bench fleet` on {}; load average before {load_before}, after {}.\n\n",
        machine(),
        commit,
        sh("cut -d' ' -f1-3 /proc/loadavg"),
    );
    if let Some((d, rl)) = &r.relay {
        let secs = |x: &Samples, p: f64| x.pct(p).as_secs_f64();
        s.push_str(&format!(
            "| Path | Echo p50 | Echo p99 | Throughput, MB/s (median of {}, {} MB each) | Relayed / direct |\n|---|---|---|---|---|\n",
            o.flood_rounds,
            o.flood_bytes / 1_000_000
        ));
        let tp = |m: &[f64]| {
            let lo = m.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = m.iter().copied().fold(0.0, f64::max);
            format!("{:.1} ({lo:.1}–{hi:.1})", median(m.to_vec()))
        };
        s.push_str(&format!(
            "| Direct: client → A (holder), n={} | {} | {} | {} | |\n",
            d.echo.len(),
            ms(d.echo.p50()),
            ms(d.echo.p99()),
            tp(&d.mbps)
        ));
        s.push_str(&format!(
            "| Relayed: client → B → A, n={} | {} | {} | {} | echo p50 {}, p99 {}; throughput {} |\n\n",
            rl.echo.len(),
            ms(rl.echo.p50()),
            ms(rl.echo.p99()),
            tp(&rl.mbps),
            ratio(secs(&rl.echo, 50.0), secs(&d.echo, 50.0)),
            ratio(secs(&rl.echo, 99.0), secs(&d.echo, 99.0)),
            ratio(median(rl.mbps.clone()), median(d.mbps.clone())),
        ));
        let per = |p: &Path| p.redis_commands as f64 / p.inputs.max(1) as f64;
        s.push_str(&format!(
            "Redis commands per `input` message during the echo rounds (renewals included): direct {:.2}, relayed {:.2}.\n\n",
            per(d),
            per(rl)
        ));
    }
    if !r.failovers.is_empty() {
        s.push_str(
            "Failover, from `kill -9` of the holder; the client was attached through B:\n\n",
        );
        s.push_str("| Run | Holder killed | Attached client's `reconnect` | Fresh attach through B: `attached` | replay (had pre-kill output) | echo of new input | Containers after |\n|---|---|---|---|---|---|---|\n");
        for (i, f) in r.failovers.iter().enumerate() {
            let rc = f
                .reconnect
                .as_ref()
                .map_or("none within 20 s".into(), |(d, why)| {
                    format!("{} {why}", ms(*d))
                });
            s.push_str(&format!(
                "| {} | {} | {rc} | {} | {} ({}) | **{}** | {} |\n",
                i + 1,
                f.holder,
                ms(f.attached),
                ms(f.replay),
                if f.replay_kept { "yes" } else { "**no**" },
                ms(f.echo),
                f.containers
            ));
        }
        for (i, f) in r.failovers.iter().enumerate() {
            for e in &f.errors {
                s.push_str(&format!("\n- run {}: error {e}", i + 1));
            }
        }
        s.push('\n');
    }
    if let Some(n) = r.left {
        s.push_str(&format!(
            "\nContainers of the instance left after the runs' deletes: {n}.\n"
        ));
    }
    s
}

//! Turns the measurements into the markdown table, with targets, and a
//! phase breakdown of where session start time goes.

use std::time::Duration;

use crate::events::WarmSplit;
use crate::start::{split_p50, Burst, ColdStart, Warm};
use crate::stats::{delta_ms, markdown, ms, ratio, Row, Samples, Verdict};
use crate::stream::{Footprint, Throughput};
use crate::Opts;

#[derive(Debug, Default)]
pub struct Results {
    pub cold: Option<ColdStart>,
    pub burst: Option<Burst>,
    /// (studio, raw exec stream)
    pub echo: Option<(Samples, Samples)>,
    pub throughput: Option<Throughput>,
    /// (attach → replay, ping → pong)
    pub reattach: Option<(Samples, Samples)>,
    pub footprint: Option<Footprint>,
    pub warm: Option<Warm>,
    /// Exec a shell into an idle running container → first output; alone,
    /// and while another container starts.
    pub exec_running: Option<(Samples, Samples)>,
    pub elapsed: Duration,
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn sh(cmd: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", cmd])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

fn rows(opts: &Opts, r: &Results) -> Vec<Row> {
    let mut rows = Vec::new();
    if let Some(c) = &r.cold {
        let n = c.studio_first_output.len();
        let q = ratio(c.studio_first_output.p50(), c.engine_first_output.p50());
        rows.push(
            Row::new(
                format!("Cold start → first shell output, p50/p95/p99 (n={n})"),
                c.studio_first_output.summary(),
                format!(
                    "Engine API create+start+exec: {}",
                    c.engine_first_output.summary()
                ),
            )
            .compare(format!("{q:.2}× (p50)"))
            .target("≤ 1.10×", Verdict::of(q <= 1.10)),
        );
        let q = ratio(c.studio_created.p50(), c.engine_created.p50());
        rows.push(
            Row::new(
                "Cold start → `container_created`, p50/p95/p99",
                c.studio_created.summary(),
                format!("Engine API create+start: {}", c.engine_created.summary()),
            )
            .compare(format!("{q:.2}× (p50)")),
        );
        let q = ratio(c.studio_created.p50(), c.docker_run.p50());
        let q2 = ratio(c.studio_first_output.p50(), c.docker_run.p50());
        rows.push(
            Row::new(
                "Cold start (`container_created`) vs `docker run -d`",
                ms(c.studio_created.p50()),
                format!("`docker run -d`: {}", c.docker_run.summary()),
            )
            .compare(format!("{q:.2}× (p50; to shell output {q2:.2}×)"))
            .target("faster than `docker run -d`", Verdict::of(q < 1.0)),
        );
    } else {
        rows.push(Row::missing(
            "Cold start",
            "not run",
            "≤ 1.10× Engine API; < `docker run -d`",
        ));
    }
    if let Some(b) = &r.burst {
        let q = ratio(b.studio_all.p50(), b.engine_all.p50());
        let rounds = b.studio_all.len();
        rows.push(
            Row::new(
                format!(
                    "Burst: {} creates at once → all have shell output, `--warm-pool 0` (median of {rounds}, rounds interleaved)",
                    opts.burst
                ),
                ms(b.studio_all.p50()),
                format!(
                    "{} concurrent Engine API starts: {}",
                    opts.burst,
                    ms(b.engine_all.p50())
                ),
            )
            .compare(format!("{q:.2}×")),
        );
        if !b.pooled_all.is_empty() {
            let warm: Vec<String> = b.pooled_warm.iter().map(|w| w.to_string()).collect();
            let ready: Vec<String> = b.pooled_ready.iter().map(|w| w.to_string()).collect();
            // Every pooled container that was ready served the burst, and the
            // cold rest finished no later than a burst of all-cold creates.
            let all_warm = b
                .pooled_warm
                .iter()
                .zip(&b.pooled_ready)
                .all(|(w, r)| *w as u64 >= (*r).min(opts.burst as u64));
            let cold_ok = b.pooled_cold_max.p50() <= b.studio_all.p50();
            rows.push(
                Row::new(
                    format!(
                        "Burst: {} creates at once, default configuration (pool ready before each round: {})",
                        opts.burst,
                        ready.join(", ")
                    ),
                    format!(
                        "all {}; served warm: {} (slowest warm {}); slowest cold {}",
                        ms(b.pooled_all.p50()),
                        warm.join(", "),
                        ms(b.pooled_warm_max.p50()),
                        ms(b.pooled_cold_max.p50())
                    ),
                    format!("all cold (`--warm-pool 0`): {}", ms(b.studio_all.p50())),
                    )
                .compare(format!(
                    "{:.2}× (slowest cold ÷ all cold)",
                    ratio(b.pooled_cold_max.p50(), b.studio_all.p50())
                ))
                .target(
                    "all warm that the pool has; the rest no slower than cold",
                    Verdict::of(all_warm && cold_ok),
                ),
            );
        }
    }
    let floor = r.exec_running.as_ref().map(|f| &f.0);
    let floor_cell = floor.map(|f| format!("exec shell into a running container: {}", f.summary()));
    match &r.warm {
        Some(w) => {
            let (p50, p99) = (w.first_output.p50(), w.first_output.p99());
            let ok = p50 < Duration::from_millis(30) && p99 < Duration::from_millis(100);
            let mut cmp = floor
                .map(|f| format!("{:.2}× exec floor", ratio(p50, f.p50())))
                .unwrap_or_default();
            if let Some(c) = &r.cold {
                cmp.push_str(&format!(
                    "; {:.2}× cold start",
                    ratio(p50, c.studio_first_output.p50())
                ));
            }
            let n = w.first_output.len();
            let mut ready = w.ready.clone();
            ready.sort_unstable();
            let ready = ready.get(ready.len() / 2).copied().unwrap_or(0);
            rows.push(
                Row::new(
                    format!("Warm start, default configuration, pool settled (median {ready} ready) → first shell output, p50/p95/p99 (n={n})"),
                    w.first_output.summary(),
                    floor_cell.clone().unwrap_or_default(),
                )
                .compare(cmp)
                .target("p50 < 30 ms, p99 < 100 ms", Verdict::of(ok)),
            );
            let (p50, p99) = (w.refill.p50(), w.refill.p99());
            let ok = p50 < Duration::from_millis(30) && p99 < Duration::from_millis(100);
            let cold = r
                .cold
                .as_ref()
                .map(|c| format!("cold start: {}", c.studio_first_output.summary()))
                .unwrap_or_default();
            rows.push(
                Row::new(
                    format!(
                        "Warm start, refill case: runs of {} creates back to back → first shell output, p50/p95/p99 (n={}, {} served warm)",
                        w.refill_run,
                        w.refill.len(),
                        w.refill_warm
                    ),
                    w.refill.summary(),
                    cold,
                )
                .target("p50 < 30 ms, p99 < 100 ms", Verdict::of(ok)),
            );
        }
        None => {
            let why = match floor_cell {
                Some(f) => format!("server has no `--warm-pool`; {f}"),
                None => "server has no `--warm-pool`".into(),
            };
            rows.push(Row::missing(
                "Warm start (default configuration)",
                why,
                "p50 < 30 ms, p99 < 100 ms",
            ))
        }
    }
    if let Some((s, raw)) = &r.echo {
        let d50 = s.p50().as_secs_f64() - raw.p50().as_secs_f64();
        let d99 = s.p99().as_secs_f64() - raw.p99().as_secs_f64();
        rows.push(
            Row::new(
                format!("Keystroke echo p50 (n={})", s.len()),
                ms(s.p50()),
                format!("bollard exec stream: {}", ms(raw.p50())),
            )
            .compare(delta_ms(s.p50(), raw.p50()))
            .target("≤ +0.3 ms", Verdict::of(d50 <= 0.0003)),
        );
        rows.push(
            Row::new(
                "Keystroke echo p99",
                ms(s.p99()),
                format!("bollard exec stream: {}", ms(raw.p99())),
            )
            .compare(delta_ms(s.p99(), raw.p99()))
            .target("≤ +1 ms", Verdict::of(d99 <= 0.001)),
        );
    }
    if let Some(t) = &r.throughput {
        let mb = opts.flood_bytes / 1_000_000;
        let q = t.one_studio / t.one_raw;
        rows.push(
            Row::new(
                format!("Throughput, 1 client ({mb} MB, median of rounds interleaved)"),
                format!("{:.0} MB/s", t.one_studio),
                format!("bollard TTY exec stream: {:.0} MB/s", t.one_raw),
            )
            .compare(format!("{:.0}%", q * 100.0))
            .target("≥ 80%", Verdict::of(q >= 0.8)),
        );
        let q = t.one_studio / t.one_cli;
        rows.push(
            Row::new(
                format!("Throughput, 1 client vs the CLI ({mb} MB)"),
                format!("{:.0} MB/s", t.one_studio),
                format!(
                    "`docker exec -t` (from its first byte): {:.0} MB/s",
                    t.one_cli
                ),
            )
            .compare(format!("{:.0}%", q * 100.0))
            .target("≥ 100%", Verdict::of(q >= 1.0)),
        );
        rows.push(
            Row::new(
                format!(
                    "Throughput, {} clients on {} sessions ({mb} MB each, aggregate, rounds interleaved)",
                    t.clients, t.clients
                ),
                format!("{:.0} MB/s", t.many_studio),
                format!(
                    "{} bollard exec streams: {:.0} MB/s; {} `docker exec -t`: {:.0} MB/s",
                    t.clients, t.many_raw, t.clients, t.many_cli
                ),
            )
            .compare(format!(
                "{:.0}% / {:.0}%",
                t.many_studio / t.many_raw * 100.0,
                t.many_studio / t.many_cli * 100.0
            )),
        );
        rows.push(
            Row::new(
                "Server RSS during throughput",
                format!(
                    "peak {} (1 client), {} ({} clients); VmHWM {}",
                    mib(t.rss_peak_one_kib),
                    mib(t.rss_peak_many_kib),
                    t.clients,
                    mib(t.hwm_kib)
                ),
                format!("before: {}", mib(t.rss_before_kib)),
            )
            .compare(format!(
                "+{}",
                mib(t
                    .rss_peak_many_kib
                    .max(t.rss_peak_one_kib)
                    .saturating_sub(t.rss_before_kib))
            )),
        );
    }
    if let Some((a, p)) = &r.reattach {
        rows.push(
            Row::new(
                format!(
                    "Re-attach → first replayed output (64 KiB replay), p50/p95/p99 (n={})",
                    a.len()
                ),
                a.summary(),
                format!("`ping`→`pong` on a fresh connection: {}", p.summary()),
            )
            .compare(delta_ms(a.p50(), p.p50()))
            .target(
                "p50 < 30 ms",
                Verdict::of(a.p50() < Duration::from_millis(30)),
            ),
        );
    }
    if let Some(f) = &r.footprint {
        let per = f.per_session_kib();
        rows.push(
            Row::new(
                format!(
                    "Footprint per idle attached session ({} sessions)",
                    f.sessions
                ),
                format!("{per:.0} KiB"),
                format!(
                    "server RSS {} idle → {} with sessions (made in {:.0} s)",
                    mib(f.rss_before_kib),
                    mib(f.rss_after_kib),
                    f.setup.as_secs_f64()
                ),
            )
            .target("< 100 KiB", Verdict::of(per < 100.0)),
        );
    }
    rows
}

/// Where a cold start spends its time: each start split at the engine's
/// own event stamps, medians per phase, the server's path next to the bare one.
fn phases(c: &ColdStart) -> String {
    let (s, e, d) = (
        split_p50(&c.studio_split),
        split_p50(&c.engine_split),
        split_p50(&c.docker_run_split),
    );
    let mut out = format!(
        "Split at `docker events` timestamps (n={} / {} / {}); each phase from the previous mark, p50.\n\n",
        c.studio_split.len(),
        c.engine_split.len(),
        c.docker_run_split.len()
    );
    out.push_str("| Phase | Claude Studio | Bare Engine API | Δ | `docker run -d` |\n|---|---|---|---|---|\n");
    let mut row = |name: &str, a: Duration, b: Duration, cli: Option<Duration>| {
        let cli = cli.map(ms).unwrap_or_default();
        out.push_str(&format!(
            "| {name} | {} | {} | {} | {cli} |\n",
            ms(a),
            ms(b),
            delta_ms(a, b)
        ));
    };
    row(
        "send → engine finished create",
        s.to_create,
        e.to_create,
        Some(d.to_create),
    );
    row(
        "create → container started",
        s.create_to_start,
        e.create_to_start,
        Some(d.create_to_start),
    );
    row(
        "started → client told (`container_created` / start returned)",
        s.start_to_reported,
        e.start_to_reported,
        Some(d.start_to_reported),
    );
    row(
        "told → exec created",
        s.reported_to_exec_create,
        e.reported_to_exec_create,
        None,
    );
    row(
        "exec created → exec started",
        s.exec_create_to_start,
        e.exec_create_to_start,
        None,
    );
    row(
        "exec started → first output at the client",
        s.exec_start_to_output,
        e.exec_start_to_output,
        None,
    );
    out.push_str(&format!(
        "\nFor scale: an image inspect (the server does one per create) takes {} p50; `docker run -d` takes {} p50.\n",
        ms(c.inspect.p50()),
        ms(c.docker_run.p50())
    ));
    out
}

pub fn render(opts: &Opts, r: &Results) -> String {
    let mut out = String::new();
    let cmd = if opts.quick {
        "cargo bench --bench terminal -- --quick"
    } else {
        "cargo bench --bench terminal"
    };
    out.push_str(&format!("### Terminal benchmark\n\n`{cmd}`"));
    if let Some(only) = &opts.only {
        out.push_str(&format!(" (`--only {}`)", only.join(",")));
    }
    let mem = sh("free -g | awk '/^Mem:/ {print $2\" GiB total, \"$7\" GiB available\"}'");
    out.push_str(&format!(
        "\n\n{} · {} cores (`nproc`) · {} (`free -g`) · Docker {} · {} · measured in {:.0} s\n\n",
        sh("date -u '+%Y-%m-%d %H:%M UTC'"),
        sh("nproc"),
        mem,
        sh("docker version --format '{{.Server.Version}}'"),
        sh("uname -r | sed 's/^/Linux /'"),
        r.elapsed.as_secs_f64()
    ));
    out.push_str(&markdown(&rows(opts, r)));
    out.push_str(
        "\nClaude Studio and each baseline are measured in the same run, interleaved; the ratio is the figure to read. \
         Percentiles are nearest-rank over sorted samples (with 30 samples, p99 is the maximum).\n",
    );
    if let Some(c) = &r.cold {
        out.push_str("\n#### Where cold-start time goes\n\n");
        out.push_str(&phases(c));
    }
    if let Some((alone, beside)) = &r.exec_running {
        out.push_str(&format!(
            "\nExec a TTY shell into an idle running container → first output (the floor for a pool of started containers without shells): {} p50/p95/p99 alone, {} while another container is being started alongside (as a pool refill does).\n",
            alone.summary(),
            beside.summary()
        ));
    }
    if let Some(w) = r.warm.as_ref().filter(|w| !w.split.is_empty()) {
        let p50 = |f: fn(&WarmSplit) -> Duration| w.split.iter().map(f).collect::<Samples>().p50();
        let prestarted = w.split.iter().filter(|s| s.shell_prestarted).count();
        out.push_str(&format!(
            "\n#### Where warm-start time goes\n\nSame method (n={}), p50: send → `container_created` {}; `container_created` → first output at the client {}. \
             In {prestarted} of {} starts the shell's exec had been created and started by the pool before the request (p50 {} before it), so a warm start makes no engine call.\n",
            w.split.len(),
            ms(p50(|s| s.to_reported)),
            ms(p50(|s| s.reported_to_output)),
            w.split.len(),
            ms(p50(|s| s.shell_offset)),
        ));
    }
    out
}

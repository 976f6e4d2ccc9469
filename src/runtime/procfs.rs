//! What the server learns of a container's processes from the machine's own
//! `/proc` (the server runs as root on the engine's machine, as the preview's
//! namespace dialling already needs): its listening TCP ports, its root
//! filesystem (see `files`), and its processes, to signal a command's whole
//! process group. A container is known by its init process, held by a pidfd
//! so that a pid the kernel has since given to another process is never
//! taken for it.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

use rustix::process::{pidfd_open, Pid, PidfdFlags};

/// A container's init process, as the machine sees it.
pub struct Process {
    pub pid: u32,
    pidfd: OwnedFd,
}

impl Process {
    /// Holds `pid` (read from the engine a moment ago).
    pub fn hold(pid: u32) -> io::Result<Process> {
        let p = Pid::from_raw(pid as i32).ok_or_else(|| io::Error::other("no such process"))?;
        let pidfd = pidfd_open(p, PidfdFlags::empty())?;
        Ok(Process { pid, pidfd })
    }

    /// Whether the process still runs (its pidfd is not readable yet).
    pub fn alive(&self) -> bool {
        let mut fds = [libc::pollfd {
            fd: self.pidfd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd for the length given, no waiting.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
        n == 0
    }

    /// Opens `/proc/PID/WHAT` of this very process: checked alive after the
    /// open, so the file cannot belong to a process that took its pid.
    pub fn open(&self, what: &str, dir: bool) -> io::Result<File> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = std::fs::OpenOptions::new();
        o.read(true);
        if dir {
            o.custom_flags(libc::O_PATH | libc::O_DIRECTORY);
        }
        let f = o.open(format!("/proc/{}/{what}", self.pid))?;
        if !self.alive() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the container's process ended",
            ));
        }
        Ok(f)
    }

    /// Whether this process lives in the same pid namespace as `other`.
    pub fn shares_pid_namespace(&self, other: &Process) -> bool {
        match (pid_namespace(self.pid), pid_namespace(other.pid)) {
            (Some(a), Some(b)) => a == b && self.alive(),
            _ => false,
        }
    }

    /// Resolves when the process has ended.
    pub async fn exited(self) -> io::Result<()> {
        // SAFETY: the AsyncFd owns the pidfd, which stays open and the same
        // for as long as it lives.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(
                self.pidfd,
                tokio::io::Interest::READABLE,
            )
        }
        .map_err(|e| e.into_parts().1)?;
        let _ready = fd.readable().await?;
        Ok(())
    }
}

/// The TCP ports something in the container listens on (IPv4 and IPv6, any
/// address: `0.0.0.0`, `127.0.0.1`, `::`).
pub fn listening_ports(p: &Process) -> io::Result<BTreeSet<u16>> {
    let mut ports = BTreeSet::new();
    for table in ["net/tcp", "net/tcp6"] {
        let text = match p.open(table, false) {
            Ok(mut f) => {
                let mut s = String::new();
                io::Read::read_to_string(&mut f, &mut s)?;
                s
            }
            // A kernel without IPv6 has no tcp6 table.
            Err(e) if e.kind() == io::ErrorKind::NotFound && table == "net/tcp6" => continue,
            Err(e) => return Err(e),
        };
        ports.extend(parse_listening(&text));
    }
    Ok(ports)
}

/// Docker's embedded DNS server for the container's network listens in the
/// container's namespace on this address (`127.0.0.11`, as the table writes
/// it): the engine's, not the session's.
const ENGINE_DNS: &str = "0B00007F";

/// Ports in state LISTEN (`0A`) of a `/proc/net/tcp{,6}` table.
fn parse_listening(table: &str) -> impl Iterator<Item = u16> + '_ {
    table.lines().skip(1).filter_map(|line| {
        let mut f = line.split_whitespace();
        let local = f.nth(1)?;
        let state = f.nth(1)?;
        let (addr, port) = local.rsplit_once(':')?;
        (state == "0A" && addr != ENGINE_DNS)
            .then(|| u16::from_str_radix(port, 16).ok())
            .flatten()
    })
}

/// The pid namespace of a process, as its `/proc` link names it.
fn pid_namespace(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok()
}

/// The process group of a process (`/proc/PID/stat`, after the command name).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(2)?.parse().ok()
}

/// Sends `signal` to every process of the container (`container`, its init
/// held) in process group `group` (a command's leader's pid, as the machine
/// sees it). Only processes in the container's own pid namespace are ever
/// signalled. Returns how many got it.
pub fn signal_group(container: &Process, group: u32, signal: i32) -> io::Result<usize> {
    let ns = pid_namespace(container.pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the container's process ended"))?;
    let mut sent = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if process_group(pid) == Some(group) && pid_namespace(pid).as_ref() == Some(&ns) {
            // SAFETY: kill has no memory preconditions.
            if unsafe { libc::kill(pid as i32, signal) } == 0 {
                sent += 1;
            }
        }
    }
    if !container.alive() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the container's process ended",
        ));
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_read_from_the_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0 100 0 0 10 0
   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:A2C4 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0 20 4 30 10 -1
   3: 0B00007F:8F81 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0 100 0 0 10 0
";
        let ports: Vec<u16> = parse_listening(tcp).collect();
        assert_eq!(ports, vec![8080, 3000]);
        let tcp6 = "  sl  local_address                         remote_address                        st
   0: 00000000000000000000000000000000:1435 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 4 1
";
        assert_eq!(parse_listening(tcp6).collect::<Vec<_>>(), vec![5173]);
    }

    #[test]
    fn this_process_is_held_and_its_group_read() {
        let me = Process::hold(std::process::id()).unwrap();
        assert!(me.alive());
        assert!(process_group(std::process::id()).is_some());
        assert!(me.open("net/tcp", false).is_ok());
    }
}

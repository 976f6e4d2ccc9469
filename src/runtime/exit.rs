//! What a process's exit code says.

/// The signal an exit code stands for. Engines report only a code, and a
/// process killed by signal N exits with 128 + N there (as in a shell's
/// `$?`), so that is what `signal` names; a program that says `exit 137`
/// itself is reported the same way, as any shell would read it.
pub fn signal_name(code: i64) -> Option<&'static str> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let n = usize::try_from(code.checked_sub(129)?).ok()?;
    NAMES.get(n).copied()
}

#[cfg(test)]
mod tests {
    use super::signal_name;

    #[test]
    fn exit_codes_over_128_name_their_signal() {
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(1), None);
        assert_eq!(signal_name(128), None);
        assert_eq!(signal_name(129), Some("SIGHUP"));
        assert_eq!(signal_name(130), Some("SIGINT"));
        assert_eq!(signal_name(137), Some("SIGKILL"));
        assert_eq!(signal_name(143), Some("SIGTERM"));
        assert_eq!(signal_name(159), Some("SIGSYS"));
        assert_eq!(signal_name(160), None);
        assert_eq!(signal_name(-1), None);
        assert_eq!(signal_name(255), None);
    }
}

//! What the bench reads about a server process from `/proc`, core pinning
//! (`sched_setaffinity`) and the descriptor limit (`setrlimit`): the module's `unsafe`
//! calls.
#![allow(unsafe_code)]

use anyhow::anyhow;

/// utime + stime of a process, in seconds.
pub(crate) fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit(')').next().ok_or_else(|| anyhow!("bad stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

/// Resident memory of a process, bytes.
pub(crate) fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS"))?;
    Ok(kb * 1024)
}

/// Parses a CPU list such as `0`, `0,2` or `1-3`.
pub(crate) fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("bad CPU list {s:?}: use forms like 0, 0,2 or 1-3");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    if cpus.is_empty() || cpus.iter().any(|&c| c >= libc::CPU_SETSIZE as usize) {
        return Err(format!("bad CPU list {s:?}"));
    }
    Ok(cpus)
}

/// Pins every thread of a process (`pid`) to `cpus`; `0` is this process. Threads
/// started later inherit the mask of the thread that starts them.
pub(crate) fn pin(pid: u32, cpus: &[usize]) -> anyhow::Result<()> {
    let pid = if pid == 0 { std::process::id() } else { pid };
    // SAFETY: cpu_set_t is plain data; CPU_ZERO/CPU_SET only write inside it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let tid: libc::pid_t = task?.file_name().to_string_lossy().parse()?;
        // SAFETY: the set is initialised and its size is passed with it.
        let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of_val(&set), &set) };
        if r != 0 {
            return Err(anyhow!(
                "pinning thread {tid} to CPUs {cpus:?}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Thousands of connections need as many descriptors: the soft limit is raised to the
/// hard one (the server started from here inherits it).
pub(crate) fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls on a stack value of the type the functions take.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_cpus;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpus("0"), Ok(vec![0]));
        assert_eq!(parse_cpus("0,2"), Ok(vec![0, 2]));
        assert_eq!(parse_cpus("1-3,5"), Ok(vec![1, 2, 3, 5]));
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
        assert!(parse_cpus("").is_err());
    }
}

//! CPU time and major page faults of the processes in a run, from `/proc`:
//! how much of the machine's two cores the server measured, its ceiling and
//! the load generator each used per request, and whether any of them had to
//! read pages back from disk meanwhile.

use std::time::Duration;

use anyhow::Context;

/// CPU time a set of processes used, user and system apart, and their major
/// page faults (pages read back from disk, such as code the kernel dropped).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
    pub major_faults: u64,
}

impl CpuTime {
    /// What the processes used so far, all their threads included.
    pub fn of(pids: &[u32]) -> anyhow::Result<Self> {
        let mut total = Self::default();
        for pid in pids {
            let stat =
                std::fs::read_to_string(format!("/proc/{pid}/stat")).with_context(|| format!("no process {pid}"))?;
            let (faults, user, system) = stat_counts(&stat).context("unexpected /proc/<pid>/stat")?;
            total.user += ticks(user.into());
            total.system += ticks(system.into());
            total.major_faults += faults;
        }
        Ok(total)
    }

    /// Microseconds per request since `before`: (user, system).
    pub fn per_request_since(&self, before: Self, requests: usize) -> (f64, f64) {
        let per = |now: Duration, then: Duration| (now - then).as_secs_f64() * 1e6 / requests.max(1) as f64;
        (per(self.user, before.user), per(self.system, before.system))
    }
}

/// `majflt`, `utime` and `stime`, fields 12, 14 and 15 of a stat line. The
/// name before them is in parentheses and may hold spaces, so fields are
/// counted from its end.
fn stat_counts(stat: &str) -> Option<(u64, u32, u32)> {
    let mut after_name = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    // After the name come field 3 (state) onwards: majflt is the 10th, utime the 12th.
    let major_faults = after_name.nth(9)?.parse().ok()?;
    let user = after_name.nth(1)?.parse().ok()?;
    let system = after_name.next()?.parse().ok()?;
    Some((major_faults, user, system))
}

/// CPU time the whole machine spent busy so far, all cores together: user,
/// nice, system and interrupts, from the first line of `/proc/stat`. Time
/// stolen by the hypervisor is not counted: it is not the run's work. For
/// work spread over processes that come and go (a database's backends and
/// parallel workers), on a machine doing nothing else meanwhile.
pub fn machine_busy() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").context("no /proc/stat")?;
    let busy = busy_ticks(stat.lines().next().unwrap_or_default()).context("unexpected /proc/stat")?;
    Ok(ticks(busy))
}

/// `n` clock ticks as a duration. The machine's count since boot outgrows
/// a `u32` (a `Duration`'s multiplier) within months, so it is divided, not multiplied.
fn ticks(n: u64) -> Duration {
    let hz = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_secs(n / hz) + Duration::from_secs(n % hz) / u32::try_from(hz).unwrap_or(u32::MAX)
}

/// User, nice, system, irq and softirq of a `cpu` line (fields 1, 2, 3, 6 and 7).
fn busy_ticks(line: &str) -> Option<u64> {
    let mut fields = line.strip_prefix("cpu ")?.split_whitespace().map(|f| f.parse::<u64>().ok());
    let mut next = || fields.next().flatten();
    let (user, nice, system, _idle, _iowait, irq, softirq) =
        (next()?, next()?, next()?, next()?, next()?, next()?, next()?);
    Some(user + nice + system + irq + softirq)
}

/// The processes a process started (nginx's master: its workers).
pub fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|list| list.split_whitespace().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_faults_and_cpu_time_even_past_a_name_with_spaces() {
        let stat = "4242 (hotline http 0) S 1 4242 4242 0 -1 4194560 100 0 17 0 731 205 0 0 20 0 5 0 1000 0 0";
        assert_eq!(stat_counts(stat), Some((17, 731, 205)));
        assert_eq!(stat_counts("4242 (cut short) S 1"), None);
    }

    #[test]
    fn counts_the_busy_fields_of_the_machine_line_and_not_idle_or_steal() {
        assert_eq!(busy_ticks("cpu  100 5 40 9000 30 2 3 700 0 0"), Some(150));
        assert_eq!(busy_ticks("cpu0 100 5 40 9000 30 2 3 700 0 0"), None);
        assert_eq!(busy_ticks("cpu  100 5"), None);
    }

    /// Spins until `grown` says the reading has grown, however busy the
    /// machine is; only a reading that never grows (a broken parse) runs into the bound.
    fn spin_until(what: &str, mut grown: impl FnMut() -> bool) {
        let started = std::time::Instant::now();
        let mut spin = 0u64;
        while !grown() {
            assert!(started.elapsed() < Duration::from_secs(60), "{what} never grew");
            for _ in 0..1_000_000 {
                spin = std::hint::black_box(spin.wrapping_add(1));
            }
        }
    }

    #[test]
    fn the_machine_is_busy_while_this_process_spins() {
        let before = machine_busy().unwrap();
        spin_until("the machine's busy time", || machine_busy().unwrap() >= before + Duration::from_millis(50));
    }

    #[test]
    fn ticks_are_exact_past_what_a_u32_holds() {
        let hz = rustix::param::clock_ticks_per_second();
        assert_eq!(ticks(hz * 5_000_000_000 + hz / 2), Duration::from_secs(5_000_000_000) + Duration::from_millis(500));
    }

    #[test]
    fn this_process_uses_cpu_time_as_it_works() {
        let me = std::process::id();
        let before = CpuTime::of(&[me]).unwrap();
        spin_until("this process's CPU time", || {
            let after = CpuTime::of(&[me]).unwrap();
            after.user + after.system >= before.user + before.system + Duration::from_millis(50)
        });
        assert!(CpuTime::of(&[u32::MAX]).is_err(), "a process that does not exist is an error");
    }
}

//! What the numbers were measured on, and CPU accounting from /proc.

use std::process::Command;
use std::time::Duration;

/// The machine and time of a run.
#[derive(Debug, Clone)]
pub struct Machine {
    pub date: String,
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub host: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "model name").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        Machine {
            date: command_line("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"])
                .unwrap_or_else(|| "unknown".to_owned()),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            kernel: command_line("uname", &["-srm"])
                .or_else(|| read_trimmed("/proc/sys/kernel/osrelease"))
                .unwrap_or_else(|| "unknown".to_owned()),
            host: read_trimmed("/proc/sys/kernel/hostname").unwrap_or_else(|| "unknown".into()),
        }
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// User plus system CPU time used so far by a process (all its threads), from
/// `/proc/PID/stat`. `None` when it cannot be read (for example, a server on another host).
pub fn cpu_time(pid: Option<u32>) -> Option<Duration> {
    let fields = stat_fields(pid)?;
    // Fields after the name, 0-based: utime is 11, stime 12, cutime 13, cstime 14.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    ticks_to_duration(utime + stime)
}

/// CPU time used so far by every user-space process on the machine that is neither this
/// bench nor one of its descendants (the server it started, that server's children): each
/// process's `utime + stime + cutime + cstime`, so that processes which exit between two
/// snapshots are still accounted for, through the parent that reaped them.
fn others_cpu_ticks(also_ours: Option<u32>) -> Option<u64> {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let me = std::process::id();
    let mut parents = std::collections::HashMap::new();
    let mut ticks = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some(fields) = stat_fields(Some(pid)) else {
            continue;
        };
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        let (Some(ppid), Some(flags)) = (field(1), field(6)) else {
            continue;
        };
        if flags & PF_KTHREAD != 0 {
            continue;
        }
        let total: u64 = (11..15).filter_map(field).sum();
        parents.insert(pid, ppid as u32);
        ticks.insert(pid, total);
    }
    let ours = |mut pid: u32| {
        for _ in 0..64 {
            if pid == me || Some(pid) == also_ours {
                return true;
            }
            match parents.get(&pid) {
                Some(&ppid) if ppid != 0 && ppid != pid => pid = ppid,
                _ => return false,
            }
        }
        false
    };
    Some(
        ticks
            .iter()
            .filter(|(pid, _)| !ours(**pid))
            .map(|(_, t)| *t)
            .sum(),
    )
}

fn stat_fields(pid: Option<u32>) -> Option<Vec<String>> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn ticks_to_duration(ticks: u64) -> Option<Duration> {
    // SAFETY: sysconf has no memory effects.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_nanos(ticks * 1_000_000_000 / per_second))
}

/// How busy the machine was with other processes' work while a run went on: on a shared
/// machine, that is what makes figures noisy. Kernel threads are not counted (the PTY and
/// loopback TCP paths run partly in them).
pub struct ForeignLoad {
    start: std::time::Instant,
    others: Option<u64>,
    server_pid: Option<u32>,
}

impl ForeignLoad {
    /// `server_pid`: a server this bench did not start, whose work (and its children's) is
    /// not "other" either.
    pub fn start(server_pid: Option<u32>) -> ForeignLoad {
        ForeignLoad {
            start: std::time::Instant::now(),
            others: others_cpu_ticks(server_pid),
            server_pid,
        }
    }

    /// Other processes' CPU use since `start`, in percent of the machine's capacity (all
    /// CPUs).
    pub fn finish(&self) -> Option<f64> {
        let wall = self.start.elapsed().as_secs_f64();
        let cpus = std::thread::available_parallelism().ok()?.get() as f64;
        let used = others_cpu_ticks(self.server_pid)?.saturating_sub(self.others?);
        let used = ticks_to_duration(used)?.as_secs_f64();
        Some((100.0 * used / (wall * cpus)).clamp(0.0, 100.0))
    }
}

//! CPU time this process has used (user + system, every thread), from getrusage. The benchmarks'
//! servers run in child processes, so this is the client's CPU alone.

use std::time::Duration;

pub fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes the struct it is given; a zeroed rusage is a valid value.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return Duration::ZERO;
        }
        usage
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Microseconds of CPU per item, for a table cell.
pub fn micros_per(cpu: Duration, items: usize) -> String {
    format!("{:.1}", cpu.as_secs_f64() * 1e6 / items.max(1) as f64)
}

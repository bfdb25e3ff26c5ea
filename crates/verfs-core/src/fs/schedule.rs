//! Scheduled snapshots with retention, the way sanoid and zfs-auto-snapshot do it: the
//! `[snapshots]` config table says how many hourly, daily, weekly and monthly snapshots
//! to keep; the daemon takes one of each kind per period and deletes the oldest of that
//! kind beyond the count.
//!
//! - A scheduled snapshot is named `PREFIX-KIND-TIME` (`auto-daily-2026-12-04T00:00:00Z`,
//!   the start of its period in UTC). Only names of that form are ever deleted, so a
//!   snapshot made by hand is never pruned.
//! - A period is `unit_secs` (an hour) times 1, 24, 168 or 720 (30 days), counted from
//!   the epoch. Only the current period is ever filled: periods missed while unmounted
//!   are not back-filled in a burst.
//! - A kind whose count is 0 is not taken, and its existing snapshots are left alone.
//!
//! [`plan`] is pure (a time and the existing snapshots in, names to create and delete
//! out), so retention is tested against a simulated clock; [`ScheduleService`] runs it.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::Deserialize;

use crate::fs::Fs;

/// The `[snapshots]` config table.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Hourly snapshots to keep (0: none taken).
    pub hourly: u32,
    /// Daily snapshots to keep.
    pub daily: u32,
    /// Weekly snapshots to keep.
    pub weekly: u32,
    /// Monthly (30-day) snapshots to keep.
    pub monthly: u32,
    /// First part of scheduled snapshots' names.
    pub prefix: String,
    /// Length of the hourly period in seconds (3600); the others are multiples of it.
    /// Shorter only for tests and demonstrations.
    pub unit_secs: u64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        ScheduleConfig {
            hourly: 0,
            daily: 0,
            weekly: 0,
            monthly: 0,
            prefix: "auto".into(),
            unit_secs: 3600,
        }
    }
}

/// The kinds, with their period in units.
const KINDS: [(&str, u64); 4] = [
    ("hourly", 1),
    ("daily", 24),
    ("weekly", 168),
    ("monthly", 720),
];

impl ScheduleConfig {
    /// Whether any kind is scheduled.
    pub fn enabled(&self) -> bool {
        self.hourly + self.daily + self.weekly + self.monthly > 0
    }

    fn keep(&self, kind: &str) -> u32 {
        match kind {
            "hourly" => self.hourly,
            "daily" => self.daily,
            "weekly" => self.weekly,
            _ => self.monthly,
        }
    }

    /// The kind of a scheduled snapshot's name (`None` for any other name).
    pub fn kind_of(&self, name: &str) -> Option<&'static str> {
        let rest = name.strip_prefix(&self.prefix)?.strip_prefix('-')?;
        KINDS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| rest.strip_prefix(k).is_some_and(|t| t.starts_with('-')))
    }
}

/// A snapshot as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Existing {
    /// Its name.
    pub name: String,
    /// When it was created, seconds since the epoch.
    pub created_secs: i64,
}

/// What one tick of the schedule does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Snapshots to take now.
    pub create: Vec<String>,
    /// Scheduled snapshots past their kind's count, oldest first.
    pub delete: Vec<String>,
}

/// The start (seconds since the epoch) of the period of `len` seconds holding `t`.
fn period_start(t: i64, len: u64) -> i64 {
    let len = len.max(1) as i64;
    t.div_euclid(len) * len
}

/// The name of the `kind` snapshot of the period starting at `start`.
fn name_for(prefix: &str, kind: &str, start: i64) -> String {
    let time = chrono::DateTime::from_timestamp(start, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| start.to_string());
    format!("{prefix}-{kind}-{time}")
}

/// What to create and delete at time `now` given the snapshots that exist.
pub fn plan(now: i64, cfg: &ScheduleConfig, existing: &[Existing]) -> Plan {
    let mut out = Plan::default();
    for (kind, units) in KINDS {
        let keep = cfg.keep(kind) as usize;
        if keep == 0 {
            continue;
        }
        let len = cfg.unit_secs.saturating_mul(units);
        let start = period_start(now, len);
        let mut mine: Vec<&Existing> = existing
            .iter()
            .filter(|e| cfg.kind_of(&e.name) == Some(kind))
            .collect();
        mine.sort_by_key(|e| (e.created_secs, e.name.clone()));
        let have_current = mine
            .iter()
            .any(|e| period_start(e.created_secs, len) == start);
        let mut count = mine.len();
        if !have_current {
            let name = name_for(&cfg.prefix, kind, start);
            if !existing.iter().any(|e| e.name == name) {
                out.create.push(name);
                count += 1;
            }
        }
        let excess = count.saturating_sub(keep);
        out.delete
            .extend(mine.iter().take(excess).map(|e| e.name.clone()));
    }
    out
}

/// The thread that applies the schedule to a mounted filesystem.
pub struct ScheduleService {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl ScheduleService {
    /// Starts applying `cfg` to `fs` (nothing runs when no kind is scheduled).
    ///
    /// Fails if the thread cannot be spawned.
    pub fn start(fs: Arc<Fs>, cfg: ScheduleConfig) -> std::io::Result<ScheduleService> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        if !cfg.enabled() {
            return Ok(ScheduleService { stop, thread: None });
        }
        let s = stop.clone();
        let thread = std::thread::Builder::new()
            .name("verfs-schedule".into())
            .spawn(move || run(&fs, &cfg, &s))?;
        Ok(ScheduleService {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ScheduleService {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(fs: &Fs, cfg: &ScheduleConfig, stop: &(Mutex<bool>, Condvar)) {
    let tick = Duration::from_millis((cfg.unit_secs.saturating_mul(1000) / 4).clamp(200, 60_000));
    loop {
        tick_once(fs, cfg);
        let g = stop.0.lock().unwrap_or_else(|p| p.into_inner());
        let (g, _) = stop
            .1
            .wait_timeout_while(g, tick, |stopped| !*stopped)
            .unwrap_or_else(|p| p.into_inner());
        if *g {
            return;
        }
    }
}

/// One pass: prune, then take what is due (so a listing never sees more than the count).
/// Failures are logged and retried next tick.
fn tick_once(fs: &Fs, cfg: &ScheduleConfig) {
    let list = match fs.list_snapshots(false) {
        Ok(l) => l,
        Err(e) => return tracing::warn!(error = %e, "snapshot schedule: cannot list snapshots"),
    };
    let existing: Vec<Existing> = list
        .snapshots
        .iter()
        .map(|s| Existing {
            name: s.name.clone(),
            created_secs: s.created_secs,
        })
        .collect();
    let now = crate::types::Timestamp::now().secs;
    let p = plan(now, cfg, &existing);
    for name in &p.delete {
        match fs.delete_snapshot(name) {
            Ok(_) => tracing::info!(name, "scheduled snapshot pruned"),
            Err(e) => tracing::warn!(name, error = %e, "pruning a scheduled snapshot failed"),
        }
    }
    for name in &p.create {
        match fs.create_snapshot(name) {
            Ok(_) => tracing::info!(name, "scheduled snapshot taken"),
            Err(e) => tracing::warn!(name, error = %e, "scheduled snapshot failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hourly: u32, daily: u32, weekly: u32, monthly: u32) -> ScheduleConfig {
        ScheduleConfig {
            hourly,
            daily,
            weekly,
            monthly,
            ..ScheduleConfig::default()
        }
    }

    /// Runs the planner every `step` seconds from `from` to `to`, applying its plan.
    fn simulate(
        c: &ScheduleConfig,
        from: i64,
        to: i64,
        step: i64,
        mut snaps: Vec<Existing>,
    ) -> Vec<Existing> {
        let mut t = from;
        while t <= to {
            let p = plan(t, c, &snaps);
            for name in p.create {
                snaps.push(Existing {
                    name,
                    created_secs: t,
                });
            }
            snaps.retain(|s| !p.delete.contains(&s.name));
            t += step;
        }
        snaps
    }

    fn count(snaps: &[Existing], c: &ScheduleConfig, kind: &str) -> usize {
        snaps
            .iter()
            .filter(|s| c.kind_of(&s.name) == Some(kind))
            .count()
    }

    #[test]
    fn after_many_periods_exactly_the_configured_counts_remain() {
        let c = cfg(24, 7, 4, 12);
        let manual = Existing {
            name: "before-upgrade".into(),
            created_secs: 1_000,
        };
        // 400 days of ticks every 10 minutes.
        let start = 1_767_225_600; // 2026-01-01T00:00:00Z
        let snaps = simulate(&c, start, start + 400 * 86_400, 600, vec![manual.clone()]);
        assert_eq!(count(&snaps, &c, "hourly"), 24);
        assert_eq!(count(&snaps, &c, "daily"), 7);
        assert_eq!(count(&snaps, &c, "weekly"), 4);
        assert_eq!(count(&snaps, &c, "monthly"), 12);
        assert!(snaps.contains(&manual), "a manual snapshot was pruned");
        assert_eq!(snaps.len(), 24 + 7 + 4 + 12 + 1);
        // The newest of each kind are the ones kept: the last hourly is this hour's.
        let last = start + 400 * 86_400;
        assert!(snaps
            .iter()
            .any(|s| s.name == name_for("auto", "hourly", period_start(last, 3600))));
    }

    #[test]
    fn missed_periods_are_not_back_filled() {
        let c = cfg(24, 0, 0, 0);
        let start = 1_767_225_600;
        let before = simulate(&c, start, start + 3 * 3600, 600, Vec::new());
        assert_eq!(count(&before, &c, "hourly"), 4);
        // Unmounted for two days: the next tick takes one snapshot, not 48.
        let p = plan(start + 2 * 86_400, &c, &before);
        assert_eq!(p.create.len(), 1, "{p:?}");
        assert!(p.delete.is_empty());
    }

    #[test]
    fn one_snapshot_per_period_and_names_of_other_forms_are_never_touched() {
        let c = cfg(2, 0, 0, 0);
        let others = vec![
            Existing {
                name: "auto-hourly".into(),
                created_secs: 0,
            },
            Existing {
                name: "auto-hourlyx-2026".into(),
                created_secs: 0,
            },
            Existing {
                name: "mine-hourly-2026-01-01T00:00:00Z".into(),
                created_secs: 0,
            },
        ];
        let start = 1_767_225_600;
        let snaps = simulate(&c, start, start + 10 * 3600, 60, others.clone());
        assert_eq!(count(&snaps, &c, "hourly"), 2);
        for o in &others {
            assert!(snaps.contains(o), "{} was touched", o.name);
        }
        // Within one period the planner asks for nothing more.
        assert_eq!(plan(start + 10 * 3600 + 30, &c, &snaps), Plan::default());
    }

    #[test]
    fn a_kind_set_to_zero_is_neither_taken_nor_pruned() {
        let c = cfg(1, 0, 0, 0);
        let old_daily = Existing {
            name: "auto-daily-2025-01-01T00:00:00Z".into(),
            created_secs: 1_735_689_600,
        };
        let p = plan(1_767_225_600, &c, std::slice::from_ref(&old_daily));
        assert_eq!(p.create.len(), 1);
        assert!(p.delete.is_empty(), "{p:?}");
    }
}

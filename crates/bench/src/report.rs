//! The printed report: machine, plan, and one table row per figure. With several runs, each
//! figure is the median of the runs, with their range beside it.

use crate::machine::Machine;
use crate::stats::format_duration;
use crate::Plan;
use std::fmt::Write as _;
use std::time::Duration;

/// A measured figure.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A latency or a wall time: lower is better.
    Time(Duration),
    /// A throughput in bytes per second: higher is better.
    Rate(f64),
    /// The workload did not complete correctly; the text says what happened.
    Failed(String),
}

impl Value {
    /// Bytes over a duration.
    pub fn rate(bytes: u64, elapsed: Duration) -> Value {
        Value::Rate(bytes as f64 / elapsed.as_secs_f64().max(1e-9))
    }

    fn sort_key(&self) -> f64 {
        match self {
            Value::Time(d) => d.as_secs_f64(),
            Value::Rate(r) => *r,
            Value::Failed(_) => f64::NAN,
        }
    }

    fn render(&self) -> String {
        match self {
            Value::Time(d) => format_duration(*d),
            Value::Rate(r) => format!("{:.0} MB/s ({:.0} MiB/s)", r / 1e6, r / 1048576.0),
            Value::Failed(reason) => format!("FAILED: {reason}"),
        }
    }

    fn render_short(&self) -> String {
        match self {
            Value::Rate(r) => format!("{:.0}", r / 1e6),
            other => other.render(),
        }
    }
}

/// The target for a figure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Goal {
    /// Context only.
    None,
    /// A time below this.
    Under(Duration),
    /// A rate of at least this many MB/s (10^6 bytes).
    AtLeastMbS(f64),
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Goal::None => String::new(),
            Goal::Under(d) if d < Duration::from_millis(1) => format!("< {} µs", d.as_micros()),
            Goal::Under(d) if d < Duration::from_secs(1) => {
                format!("< {} ms", d.as_secs_f64() * 1e3)
            }
            Goal::Under(d) => format!("< {} s", d.as_secs_f64()),
            Goal::AtLeastMbS(mb) => format!(">= {mb:.0} MB/s"),
        }
    }

    fn verdict(self, value: &Value) -> &'static str {
        let met = match (self, value) {
            (_, Value::Failed(_)) => return "FAILED",
            (Goal::None, _) => return "",
            (Goal::Under(limit), Value::Time(d)) => *d < limit,
            (Goal::AtLeastMbS(mb), Value::Rate(r)) => *r >= mb * 1e6,
            _ => return "",
        };
        if met {
            "met"
        } else {
            "MISSED"
        }
    }
}

/// One line of the results table.
#[derive(Debug, Clone)]
pub struct Row {
    pub metric: String,
    pub value: Value,
    pub goal: Goal,
    /// The codex exec-server's figure on the same work, as given in the issue.
    pub codex: String,
    /// Details printed under the table (breakdowns, CPU time, local floors).
    pub note: Option<String>,
}

impl Row {
    pub fn new(metric: &str, value: Value, goal: Goal, codex: &str) -> Row {
        Row {
            metric: metric.to_owned(),
            value,
            goal,
            codex: codex.to_owned(),
            note: None,
        }
    }

    pub fn with_note(mut self, note: String) -> Row {
        self.note = Some(note);
        self
    }

    pub fn failed(metric: &str, reason: &str) -> Row {
        Row::new(metric, Value::Failed(reason.to_owned()), Goal::None, "")
    }

    pub fn is_failed(&self) -> bool {
        matches!(self.value, Value::Failed(_))
    }
}

/// One figure over all runs.
struct Summary {
    metric: String,
    /// The median run's row (its value, note and goal are shown).
    median: Row,
    /// (min, max) over the runs, when there was more than one successful run.
    range: Option<(Value, Value)>,
    runs: usize,
}

fn summarize(runs: &[Vec<Row>]) -> Vec<Summary> {
    let mut order: Vec<String> = Vec::new();
    for row in runs.iter().flatten() {
        if !order.contains(&row.metric) {
            order.push(row.metric.clone());
        }
    }
    order
        .into_iter()
        .map(|metric| {
            let rows: Vec<&Row> = runs
                .iter()
                .flatten()
                .filter(|r| r.metric == metric)
                .collect();
            // Any failed run makes the figure a failure: correctness is not averaged away.
            if let Some(failed) = rows.iter().find(|r| r.is_failed()) {
                return Summary {
                    metric,
                    median: (*failed).clone(),
                    range: None,
                    runs: rows.len(),
                };
            }
            let mut sorted = rows.clone();
            sorted.sort_by(|a, b| a.value.sort_key().total_cmp(&b.value.sort_key()));
            let median = sorted[(sorted.len() - 1) / 2].clone();
            let range = (sorted.len() > 1).then(|| {
                (
                    sorted[0].value.clone(),
                    sorted[sorted.len() - 1].value.clone(),
                )
            });
            Summary {
                metric,
                median,
                range,
                runs: rows.len(),
            }
        })
        .collect()
}

pub struct Report {
    pub machine: Machine,
    pub plan: Plan,
    pub server: String,
    /// The rows of each run.
    pub runs: Vec<Vec<Row>>,
    /// Per run: percent of the machine's CPU used by other processes and kernel threads.
    pub foreign_load: Vec<Option<f64>>,
    /// Runs thrown away because other processes were too busy (`--max-other-load`).
    pub discarded: usize,
}

impl Report {
    pub fn new(machine: Machine, plan: Plan) -> Report {
        Report {
            machine,
            plan,
            server: String::new(),
            runs: Vec::new(),
            foreign_load: Vec::new(),
            discarded: 0,
        }
    }

    pub fn render(&self) -> String {
        let m = &self.machine;
        let p = &self.plan;
        let mut out = String::new();
        let _ = writeln!(out);
        let _ = writeln!(out, "exec-server-bench, {}", m.date);
        let _ = writeln!(
            out,
            "machine: {} ({} CPUs, {}), {}",
            m.host, m.cpus, m.cpu_model, m.kernel
        );
        let _ = writeln!(out, "server:  {}", self.server);
        let _ = writeln!(
            out,
            "plan:    exec {} runs, output {} MiB per mode, echo {} lines, rpc {} calls, {} \
             concurrent processes; {}",
            p.exec_iterations,
            p.output_bytes as f64 / 1048576.0,
            p.echo_iterations,
            p.rpc_iterations,
            p.concurrent,
            if self.runs.len() > 1 {
                format!("{} runs, median shown", self.runs.len())
            } else {
                "1 run".to_owned()
            }
        );
        let _ = writeln!(out);

        let summaries = summarize(&self.runs);
        let multi = self.runs.len() > 1;
        let mut header = vec![
            "Measurement",
            "Result",
            "Target",
            "Verdict",
            "codex (issue)",
        ];
        if multi {
            header.insert(2, "Range (min-max)");
        }
        let cells: Vec<Vec<String>> = summaries
            .iter()
            .map(|s| {
                let mut row = vec![
                    s.metric.clone(),
                    s.median.value.render(),
                    s.median.goal.describe(),
                    s.median.goal.verdict(&s.median.value).to_owned(),
                    s.median.codex.clone(),
                ];
                if multi {
                    let range = match &s.range {
                        Some((lo, hi)) => match lo {
                            Value::Rate(_) => {
                                format!("{}-{} MB/s", lo.render_short(), hi.render_short())
                            }
                            _ => format!("{} - {}", lo.render(), hi.render()),
                        },
                        None if s.runs > 1 => String::new(),
                        None => "(1 run)".to_owned(),
                    };
                    row.insert(2, range);
                }
                row
            })
            .collect();
        render_table(&mut out, &header, &cells);

        let loads: Vec<String> = self
            .foreign_load
            .iter()
            .map(|l| l.map_or_else(|| "?".to_owned(), |l| format!("{l:.0}%")))
            .collect();
        if !loads.is_empty() {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Other processes' CPU use during {} (not this bench or its server; share of \
                 all CPUs): {}",
                if loads.len() > 1 {
                    "each run"
                } else {
                    "the run"
                },
                loads.join(", ")
            );
            if self.discarded > 0 {
                let _ = writeln!(
                    out,
                    "{} more run(s) were discarded because other processes used more than \
                     --max-other-load.",
                    self.discarded
                );
            }
        }

        let notes: Vec<_> = summaries
            .iter()
            .filter_map(|s| s.median.note.as_ref().map(|n| (&s.metric, n)))
            .collect();
        if !notes.is_empty() {
            let _ = writeln!(out);
            if multi {
                let _ = writeln!(out, "Details (from the median run of each figure):");
            }
            for (metric, note) in notes {
                let _ = writeln!(out, "- {metric}: {note}");
            }
        }
        out
    }
}

/// A Markdown table, padded so that it also reads well in a terminal.
fn render_table(out: &mut String, header: &[&str], cells: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: &[String]| {
        let mut s = String::from("|");
        for (c, w) in cols.iter().zip(&widths) {
            let pad = w - c.chars().count();
            let _ = write!(s, " {c}{} |", " ".repeat(pad));
        }
        s
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let _ = writeln!(out, "{}", line(&header));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let _ = writeln!(out, "{}", line(&rule));
    for row in cells {
        let _ = writeln!(out, "{}", line(row));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time_row(metric: &str, micros: u64) -> Row {
        Row::new(
            metric,
            Value::Time(Duration::from_micros(micros)),
            Goal::Under(Duration::from_micros(50)),
            "",
        )
    }

    #[test]
    fn median_and_range_over_runs() {
        let runs = vec![
            vec![time_row("rpc", 40)],
            vec![time_row("rpc", 90)],
            vec![time_row("rpc", 30)],
        ];
        let s = summarize(&runs);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].median.value, Value::Time(Duration::from_micros(40)));
        assert_eq!(
            s[0].range,
            Some((
                Value::Time(Duration::from_micros(30)),
                Value::Time(Duration::from_micros(90))
            ))
        );
        assert_eq!(s[0].median.goal.verdict(&s[0].median.value), "met");
    }

    #[test]
    fn one_failed_run_fails_the_figure() {
        let runs = vec![vec![time_row("rpc", 40)], vec![Row::failed("rpc", "boom")]];
        let s = summarize(&runs);
        assert!(s[0].median.is_failed());
        assert_eq!(s[0].median.goal.verdict(&s[0].median.value), "FAILED");
    }

    #[test]
    fn rates_compare_in_mb_per_s() {
        let v = Value::rate(600_000_000, Duration::from_secs(1));
        assert_eq!(Goal::AtLeastMbS(600.0).verdict(&v), "met");
        assert_eq!(Goal::AtLeastMbS(601.0).verdict(&v), "MISSED");
        assert_eq!(v.render(), "600 MB/s (572 MiB/s)");
    }
}

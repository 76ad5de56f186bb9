//! Call detail records: one JSON object per finished call, one per line, in a rotated file.
//!
//! The signalling shards hand finished [`CallRecord`]s to [`submit`], which only does a
//! `try_send` on a bounded channel: a slow or full disk must never hold up SIP. A dedicated OS
//! thread ([`install`]) owns the [`CdrWriter`], turns records into [`Cdr`]s and writes them;
//! file I/O never runs on a tokio worker. When the channel is full the record is dropped and
//! counted (`sipborder_cdr_records_dropped_total{reason="queue_full"}`): losing a CDR is better
//! than delaying calls, and the counter makes the loss visible.
//!
//! Rotation renames the live file (`cdr.jsonl`) out of the way: to `cdr.jsonl.1` … `.keep`
//! when it would grow past a size, or to `cdr-YYYY-MM-DD.jsonl` (the UTC day its records
//! belong to) at the first write or idle check after UTC midnight.

use super::names;
use crate::b2bua::call::{EndCause, Side};
use crate::b2bua::CallRecord;
use crate::media::MediaTotals;
use crate::policy::causes::{self, CauseMap};
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Records queued between the shards and the writer thread before new ones are dropped.
/// At 16 bytes of channel slot plus a few small strings per record this is a few MiB at most,
/// and minutes of records at any realistic call rate.
pub const QUEUE_CAPACITY: usize = 16 * 1024;

/// When the live file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotate {
    /// Before a write would take the file past this many bytes.
    Size(u64),
    /// At UTC midnight.
    #[default]
    Daily,
}

impl Rotate {
    /// Parses `daily` or `size:N[unit]` (`B`, `KB`/`MB`/`GB` powers of 1000, `KiB`/`MiB`/`GiB`
    /// powers of 1024), e.g. `size:100MiB`.
    pub fn parse(s: &str) -> Result<Rotate, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("daily") {
            return Ok(Rotate::Daily);
        }
        let bad =
            || format!("bad rotate {s:?} (write `daily` or `size:` and a size, e.g. size:100MiB)");
        let size = s.strip_prefix("size:").ok_or_else(bad)?.trim();
        let digits = size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len());
        let (num, unit) = size.split_at(digits);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "mb" => 1000 * 1000,
            "gb" => 1000 * 1000 * 1000,
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            _ => return Err(bad()),
        };
        match n.checked_mul(mult) {
            Some(bytes) if bytes > 0 => Ok(Rotate::Size(bytes)),
            _ => Err(bad()),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Rotate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A visitor rather than `String::deserialize` + parse, so serde_yaml marks the error
        // at the value instead of at the key.
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Rotate;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`daily` or `size:` and a size such as size:100MiB")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Rotate, E> {
                Rotate::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// Where and how CDRs are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CdrConfig {
    /// The live file, e.g. `/var/log/sipborder/cdr.jsonl`; rotated files go beside it.
    pub path: PathBuf,
    /// When to rotate.
    pub rotate: Rotate,
    /// Rotated files kept; older ones are deleted (0: none kept).
    pub keep: usize,
}

impl From<&crate::config::CdrSection> for CdrConfig {
    fn from(s: &crate::config::CdrSection) -> Self {
        CdrConfig { path: s.path.clone(), rotate: s.rotate, keep: s.keep }
    }
}

/// What went wrong writing CDRs.
#[derive(Debug, thiserror::Error)]
pub enum CdrError {
    /// A file operation failed.
    #[error("CDR {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`open`, `write`, `rotate`, ...): also the metric label.
        op: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A record could not be encoded (not expected: every field is plain data).
    #[error("CDR encoding: {0}")]
    Encode(#[from] serde_json::Error),
}

impl CdrError {
    /// Bounded label for `sipborder_cdr_errors_total`.
    pub fn op(&self) -> &'static str {
        match self {
            CdrError::Io { op, .. } => op,
            CdrError::Encode(_) => "encode",
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CdrError + 'a {
    move |source| CdrError::Io { op, path: path.to_path_buf(), source }
}

/// Media of one direction in a CDR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CdrMediaDirection {
    /// RTP packets relayed.
    pub packets: u64,
    /// RTP bytes relayed.
    pub bytes: u64,
    /// Packets lost (sequence gaps).
    pub lost: u64,
    /// `lost / (packets + lost)`, percent.
    pub loss_pct: f64,
    /// Worst interarrival jitter of the direction's streams, milliseconds.
    pub jitter_ms: f64,
    /// E-model MOS estimate; `null` when no packet flowed (nothing to judge).
    pub mos: Option<f64>,
}

impl CdrMediaDirection {
    fn of(t: &MediaTotals) -> Self {
        let sent = t.packets + t.lost;
        let loss_pct = if sent == 0 { 0.0 } else { t.lost as f64 * 100.0 / sent as f64 };
        // sipborder relays without RTCP termination, so there is no RTT measurement: the
        // estimate covers loss, jitter and codec delay only.
        let mos = (t.packets > 0).then(|| round2(mos(loss_pct, t.jitter_ms, 0.0)));
        CdrMediaDirection {
            packets: t.packets,
            bytes: t.bytes,
            lost: t.lost,
            loss_pct: round2(loss_pct),
            jitter_ms: round2(t.jitter_ms),
            mos,
        }
    }
}

/// Media of both directions in a CDR.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CdrMedia {
    /// From the caller (leg A) toward the callee.
    pub a_to_b: CdrMediaDirection,
    /// From the callee (leg B) toward the caller.
    pub b_to_a: CdrMediaDirection,
}

/// One call detail record, as written (one JSON object per line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cdr {
    /// Call-ID of leg A (the inbound leg).
    pub a_call_id: String,
    /// Call-ID of leg B (made up by sipborder).
    pub b_call_id: String,
    /// Zone leg A arrived on.
    pub zone: String,
    /// Trunk leg B went to (the last one tried), if any.
    pub trunk: Option<String>,
    /// Calling number (user part of A's From).
    pub from: Option<String>,
    /// Called number (user part of A's Request-URI).
    pub to: Option<String>,
    /// INVITE arrival, RFC 3339 UTC.
    pub start: String,
    /// Answer (2xx), RFC 3339 UTC; `null` when not answered.
    pub answer: Option<String>,
    /// End, RFC 3339 UTC.
    pub end: String,
    /// Answer to end, seconds (0 when not answered): the billable duration.
    pub duration_s: f64,
    /// INVITE to answer, seconds; `null` when not answered.
    pub setup_s: Option<f64>,
    /// INVITE to the first 18x, seconds (post-dial delay); `null` when none came.
    pub pdd_s: Option<f64>,
    /// Final SIP status of the INVITE toward the caller.
    pub final_code: u16,
    /// Q.850 cause of the release: the one received from or sent to the carrier, else the
    /// RFC 3398 mapping of how the call ended.
    pub q850_cause: Option<u8>,
    /// Who ended the call: `caller`, `callee` or `sipborder`.
    pub hangup_side: &'static str,
    /// Why it ended (bounded set, see [`end_reason`]).
    pub end_reason: &'static str,
    /// Media totals per direction.
    pub media: CdrMedia,
}

/// Who ended a call, as written in `hangup_side`.
pub fn hangup_side(cause: EndCause) -> &'static str {
    match cause {
        EndCause::Bye(Side::A) | EndCause::Cancelled => "caller",
        EndCause::Bye(Side::B) | EndCause::Rejected(_) => "callee",
        EndCause::Refused(_)
        | EndCause::Timeout
        | EndCause::NoAnswer
        | EndCause::SessionFailure
        | EndCause::MediaTimeout
        | EndCause::NoMediaPorts
        | EndCause::Shutdown => "sipborder",
    }
}

/// Why a call ended, as written in `end_reason`.
pub fn end_reason(cause: EndCause) -> &'static str {
    match cause {
        EndCause::Bye(_) => "bye",
        EndCause::Cancelled => "cancelled",
        EndCause::Rejected(_) => "rejected",
        EndCause::Refused(_) => "refused",
        EndCause::Timeout => "timeout",
        EndCause::NoAnswer => "no_answer",
        EndCause::SessionFailure => "session_failure",
        EndCause::MediaTimeout => "media_timeout",
        EndCause::NoMediaPorts => "no_media_ports",
        EndCause::Shutdown => "shutdown",
    }
}

/// The Q.850 cause a call's end stands for by RFC 3398, for calls where no cause was received
/// from or sent to a carrier (`CallRecord::q850_cause` wins when set).
pub fn q850_cause(cause: EndCause, final_code: u16) -> Option<u8> {
    match cause {
        EndCause::Bye(_) | EndCause::Cancelled => Some(causes::cause_for_bye_or_cancel()),
        EndCause::Rejected(code) | EndCause::Refused(code) => {
            CauseMap::rfc3398().cause_for_sip(code, None)
        }
        // 102: recovery on timer expiry.
        EndCause::Timeout => Some(102),
        // 19: no answer from user (user alerted).
        EndCause::NoAnswer => Some(19),
        // 41: temporary failure — the session broke, not the user.
        EndCause::SessionFailure | EndCause::MediaTimeout => Some(41),
        // 47: resource unavailable, unspecified.
        EndCause::NoMediaPorts => Some(47),
        // 16: normal clearing, sipborder hung up on purpose.
        EndCause::Shutdown => Some(16),
    }
    .or_else(|| CauseMap::rfc3398().cause_for_sip(final_code, None))
}

/// MOS estimate from a simplified ITU-T G.107 E-model for G.711.
///
/// `R = 93.2 − Id − Ie_eff`, where Id comes from the effective one-way latency
/// `rtt/2 + 2·jitter + 10 ms` (codec and packetisation delay) by the Cole–Rosenbluth
/// approximation `0.024·d + 0.11·(d − 177.3)·H(d − 177.3)`, and
/// `Ie_eff = Ie + (95 − Ie)·Ppl/(Ppl + Bpl)` with G.711's Ie = 0 and Bpl = 4.3 (random loss,
/// no packet loss concealment). MOS = 1 + 0.035R + 7·10⁻⁶·R(R−60)(100−R), clamped to 1..4.5.
pub fn mos(loss_pct: f64, jitter_ms: f64, rtt_ms: f64) -> f64 {
    let clean = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let (loss, jitter, rtt) = (clean(loss_pct).min(100.0), clean(jitter_ms), clean(rtt_ms));
    let d = rtt / 2.0 + 2.0 * jitter + 10.0;
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    const IE: f64 = 0.0;
    const BPL: f64 = 4.3;
    let ie_eff = IE + (95.0 - IE) * loss / (loss + BPL);
    let r = 93.2 - id - ie_eff;
    if r <= 0.0 {
        return 1.0;
    }
    let m = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r);
    m.clamp(1.0, 4.5)
}

fn round2(v: f64) -> f64 {
    if v.is_finite() {
        (v * 100.0).round() / 100.0
    } else {
        0.0
    }
}

fn secs(from: Instant, to: Instant) -> f64 {
    (to.saturating_duration_since(from).as_secs_f64() * 1000.0).round() / 1000.0
}

impl Cdr {
    /// The CDR of a finished call. `wall_clock_of` turns the record's monotonic instants into
    /// wall-clock times (see [`wall_clock_now`]).
    pub fn from_record(rec: &CallRecord, wall_clock_of: impl Fn(Instant) -> SystemTime) -> Cdr {
        Cdr {
            a_call_id: rec.a_call_id.clone(),
            b_call_id: rec.b_call_id.clone(),
            zone: rec.a_zone.clone(),
            trunk: rec.b_trunk.clone(),
            from: rec.from.clone(),
            to: rec.to.clone(),
            start: rfc3339(wall_clock_of(rec.started)),
            answer: rec.answered.map(|a| rfc3339(wall_clock_of(a))),
            end: rfc3339(wall_clock_of(rec.ended)),
            duration_s: rec.answered.map(|a| secs(a, rec.ended)).unwrap_or(0.0),
            setup_s: rec.answered.map(|a| secs(rec.started, a)),
            pdd_s: rec.first_provisional.map(|p| secs(rec.started, p)),
            final_code: rec.final_code,
            q850_cause: rec.q850_cause.or_else(|| q850_cause(rec.cause, rec.final_code)),
            hangup_side: hangup_side(rec.cause),
            end_reason: end_reason(rec.cause),
            media: CdrMedia {
                a_to_b: CdrMediaDirection::of(&rec.media[0]),
                b_to_a: CdrMediaDirection::of(&rec.media[1]),
            },
        }
    }
}

/// [`Cdr::from_record`] as the brief names it: a free function.
pub fn from_record(rec: &CallRecord, wall_clock_of: impl Fn(Instant) -> SystemTime) -> Cdr {
    Cdr::from_record(rec, wall_clock_of)
}

/// A converter from `Instant` to wall-clock time anchored at this moment. Anchoring per record
/// (rather than once at start-up) keeps CDR times right after the system clock is stepped.
pub fn wall_clock_now() -> impl Fn(Instant) -> SystemTime {
    wall_clock_at(Instant::now(), SystemTime::now())
}

/// A converter anchored at a known pair of readings.
pub fn wall_clock_at(mono: Instant, wall: SystemTime) -> impl Fn(Instant) -> SystemTime {
    move |i: Instant| {
        let t = if i <= mono { wall.checked_sub(mono - i) } else { wall.checked_add(i - mono) };
        t.unwrap_or(UNIX_EPOCH)
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn since_epoch(t: SystemTime) -> Duration {
    // Times before 1970 only come from a broken clock; they are written as the epoch.
    t.duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// `YYYY-MM-DD` of `t` in UTC.
pub fn utc_date(t: SystemTime) -> String {
    let (y, m, d) = civil_from_days((since_epoch(t).as_secs() / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `t` as RFC 3339 in UTC with milliseconds, e.g. `2024-05-01T12:00:00.250Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let since = since_epoch(t);
    let s = since.as_secs();
    let (hh, mm, ss) = ((s % 86_400) / 3600, (s % 3600) / 60, s % 60);
    format!("{}T{hh:02}:{mm:02}:{ss:02}.{:03}Z", utc_date(t), since.subsec_millis())
}

/// Writes CDRs to one file and rotates it. Not thread-safe by design: one owner (the writer
/// thread) calls it; `now` is passed in so rotation is testable without waiting for midnight.
#[derive(Debug)]
pub struct CdrWriter {
    cfg: CdrConfig,
    file: Option<BufWriter<File>>,
    /// Bytes in the live file (what is on disk plus what is buffered).
    size: u64,
    /// UTC day the live file's records belong to (daily rotation).
    day: Option<String>,
}

impl CdrWriter {
    /// Opens (appending) or creates the live file; an existing one keeps its size and, for daily
    /// rotation, the day of its last modification, so a restart continues the same files.
    pub fn open(cfg: CdrConfig) -> Result<CdrWriter, CdrError> {
        let mut w = CdrWriter { cfg, file: None, size: 0, day: None };
        w.ensure_open()?;
        Ok(w)
    }

    /// The configuration in use.
    pub fn config(&self) -> &CdrConfig {
        &self.cfg
    }

    fn ensure_open(&mut self) -> Result<(), CdrError> {
        if self.file.is_some() {
            return Ok(());
        }
        let path = self.cfg.path.clone();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Best effort: under a read-only root the directory is made by the installer.
            let _ = std::fs::create_dir_all(dir);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        let meta = file.metadata().map_err(io_err("open", &path))?;
        self.size = meta.len();
        if self.day.is_none() && self.size > 0 {
            self.day = meta.modified().ok().map(utc_date);
        }
        self.file = Some(BufWriter::new(file));
        Ok(())
    }

    /// Appends one record at wall-clock time `now`, rotating first when due.
    pub fn write(&mut self, cdr: &Cdr, now: SystemTime) -> Result<(), CdrError> {
        let mut line = serde_json::to_vec(cdr)?;
        line.push(b'\n');
        self.write_line(&line, now)
    }

    fn write_line(&mut self, line: &[u8], now: SystemTime) -> Result<(), CdrError> {
        self.ensure_open()?;
        let today = utc_date(now);
        let due = match self.cfg.rotate {
            Rotate::Size(max) => self.size > 0 && self.size + line.len() as u64 > max,
            Rotate::Daily => self.size > 0 && self.day.as_deref().is_some_and(|d| d != today),
        };
        if due {
            self.rotate()?;
            self.ensure_open()?;
        }
        self.day = Some(today);
        let path = &self.cfg.path;
        let Some(f) = self.file.as_mut() else { return Ok(()) };
        if let Err(e) = f.write_all(line) {
            // Reopened at the next write: the file may have been removed or the disk fixed.
            self.file = None;
            return Err(io_err("write", path)(e));
        }
        self.size += line.len() as u64;
        Ok(())
    }

    /// Rotates the live file when daily rotation is due at `now` though nothing is written (an
    /// idle night must still close yesterday's file).
    pub fn tick(&mut self, now: SystemTime) -> Result<(), CdrError> {
        if self.cfg.rotate == Rotate::Daily
            && self.size > 0
            && self.day.as_deref().is_some_and(|d| d != utc_date(now))
        {
            self.rotate()?;
            self.ensure_open()?;
        }
        Ok(())
    }

    /// Pushes buffered records to the OS.
    pub fn flush(&mut self) -> Result<(), CdrError> {
        let path = &self.cfg.path;
        if let Some(f) = self.file.as_mut() {
            if let Err(e) = f.flush() {
                self.file = None;
                return Err(io_err("flush", path)(e));
            }
        }
        Ok(())
    }

    /// Closes the live file and moves it aside; the next write opens a fresh one.
    pub fn rotate(&mut self) -> Result<(), CdrError> {
        let flushed = self.flush();
        self.file = None;
        flushed?;
        let path = self.cfg.path.clone();
        if !path.exists() {
            self.size = 0;
            return Ok(());
        }
        match self.cfg.rotate {
            Rotate::Size(_) => self.rotate_numbered(&path)?,
            Rotate::Daily => self.rotate_dated(&path)?,
        }
        self.size = 0;
        self.day = None;
        Ok(())
    }

    fn numbered(path: &Path, n: usize) -> PathBuf {
        let mut s = path.as_os_str().to_owned();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate_numbered(&self, path: &Path) -> Result<(), CdrError> {
        let keep = self.cfg.keep;
        if keep == 0 {
            return std::fs::remove_file(path).map_err(io_err("rotate", path));
        }
        let oldest = Self::numbered(path, keep);
        if oldest.exists() {
            std::fs::remove_file(&oldest).map_err(io_err("rotate", &oldest))?;
        }
        for n in (1..keep).rev() {
            let from = Self::numbered(path, n);
            if from.exists() {
                let to = Self::numbered(path, n + 1);
                std::fs::rename(&from, &to).map_err(io_err("rotate", &from))?;
            }
        }
        let first = Self::numbered(path, 1);
        std::fs::rename(path, &first).map_err(io_err("rotate", path))
    }

    /// `(dir, stem, extension)` of the live file: `cdr.jsonl` → `cdr`, `.jsonl`.
    fn parts(path: &Path) -> (PathBuf, String, String) {
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let ext = path.extension().map(|e| format!(".{}", e.to_string_lossy())).unwrap_or_default();
        (dir, stem, ext)
    }

    /// The name a daily file gets: `cdr-YYYY-MM-DD.jsonl`.
    pub fn dated_path(path: &Path, day: &str) -> PathBuf {
        let (dir, stem, ext) = Self::parts(path);
        dir.join(format!("{stem}-{day}{ext}"))
    }

    fn rotate_dated(&self, path: &Path) -> Result<(), CdrError> {
        let day = self.day.clone().unwrap_or_else(|| utc_date(SystemTime::now()));
        let mut target = Self::dated_path(path, &day);
        // The same day can be closed twice (clock stepped back, file restored by hand): never
        // overwrite a closed file.
        let mut n = 1;
        while target.exists() {
            let (dir, stem, ext) = Self::parts(path);
            target = dir.join(format!("{stem}-{day}.{n}{ext}"));
            n += 1;
        }
        std::fs::rename(path, &target).map_err(io_err("rotate", path))?;
        self.prune_dated(path)
    }

    /// Deletes the oldest dated files beyond `keep`.
    fn prune_dated(&self, path: &Path) -> Result<(), CdrError> {
        let (dir, stem, ext) = Self::parts(path);
        let read_dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir.as_path() };
        let prefix = format!("{stem}-");
        let mut dated: Vec<PathBuf> = std::fs::read_dir(read_dir)
            .map_err(io_err("prune", read_dir))?
            .filter_map(|e| e.ok())
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(ext.as_str()))
                    .is_some_and(is_dated_suffix)
            })
            .map(|e| e.path())
            .collect();
        // ISO dates sort by name; `.N` repeats of a day sort after it.
        dated.sort();
        let excess = dated.len().saturating_sub(self.cfg.keep);
        for old in &dated[..excess] {
            std::fs::remove_file(old).map_err(io_err("prune", old))?;
        }
        Ok(())
    }
}

/// `YYYY-MM-DD` optionally followed by `.N`.
fn is_dated_suffix(s: &str) -> bool {
    let (date, rest) = s.split_at(s.len().min(10));
    let b = date.as_bytes();
    let date_ok = b.len() == 10
        && b.iter()
            .enumerate()
            .all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    date_ok
        && (rest.is_empty()
            || rest
                .strip_prefix('.')
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit())))
}

/// What travels to the writer thread.
enum Job {
    /// A finished call and the clock readings taken when it was submitted (to convert its
    /// instants to wall-clock time).
    Record(Box<CallRecord>, Instant, SystemTime),
    /// Write and flush everything queued before this, then answer.
    Flush(SyncSender<()>),
}

static SINK: OnceLock<SyncSender<Job>> = OnceLock::new();

/// Hands a finished call to the CDR writer without blocking. Does nothing when CDRs are off.
pub fn submit(rec: CallRecord) {
    let Some(tx) = SINK.get() else { return };
    match tx.try_send(Job::Record(Box::new(rec), Instant::now(), SystemTime::now())) {
        Ok(()) => {}
        Err(TrySendError::Full(_)) => {
            metrics::counter!(names::CDR_RECORDS_DROPPED_TOTAL, "reason" => "queue_full")
                .increment(1);
        }
        Err(TrySendError::Disconnected(_)) => {
            metrics::counter!(names::CDR_RECORDS_DROPPED_TOTAL, "reason" => "writer_gone")
                .increment(1);
        }
    }
}

/// Waits (at most `within`) until every record submitted so far is written and flushed. For
/// shutdown: the writer is a plain thread, which the process exit would cut short. Returns
/// false when CDRs are off or the writer did not answer in time.
pub fn flush(within: Duration) -> bool {
    let Some(tx) = SINK.get() else { return false };
    let deadline = Instant::now() + within;
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    let mut job = Job::Flush(done_tx);
    loop {
        match tx.try_send(job) {
            Ok(()) => break,
            Err(TrySendError::Full(j)) if Instant::now() < deadline => {
                job = j;
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => return false,
        }
    }
    done_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
}

/// Starts the CDR writer thread for `cfg` and routes [`submit`] to it. Once per process: a
/// second call (a reload) is refused, as the file cannot change without a restart.
///
/// A file that cannot be opened now is not fatal: the error is logged and counted and the
/// writer retries at every record, so a directory fixed later starts receiving CDRs.
pub fn install(cfg: CdrConfig) -> std::io::Result<()> {
    let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
    if SINK.set(tx).is_err() {
        return Err(std::io::Error::other("the CDR writer is already running"));
    }
    std::thread::Builder::new().name("cdr-writer".into()).spawn(move || run_writer(cfg, rx))?;
    Ok(())
}

/// Counts every CDR error and logs them, at most one line per op every 10 s: a full disk at
/// 100 calls/s must not turn into 100 log lines/s.
#[derive(Default)]
struct ErrorReporter {
    last: std::collections::HashMap<&'static str, (Instant, u64)>,
}

impl ErrorReporter {
    fn report(&mut self, e: &CdrError) {
        metrics::counter!(names::CDR_ERRORS_TOTAL, "op" => e.op()).increment(1);
        let now = Instant::now();
        match self.last.get_mut(e.op()) {
            Some((at, suppressed)) if now.duration_since(*at) < Duration::from_secs(10) => {
                *suppressed += 1;
            }
            Some((at, suppressed)) => {
                tracing::error!(error = %e, suppressed = *suppressed, "CDR write failed");
                *at = now;
                *suppressed = 0;
            }
            None => {
                tracing::error!(error = %e, "CDR write failed");
                self.last.insert(e.op(), (now, 0));
            }
        }
    }
}

fn count_dropped(reason: &'static str) {
    metrics::counter!(names::CDR_RECORDS_DROPPED_TOTAL, "reason" => reason).increment(1);
}

/// The writer thread: write what arrives, flush whenever the queue runs dry (so a CDR is on
/// disk within moments of the call's end), check daily rotation while idle.
fn run_writer(cfg: CdrConfig, rx: Receiver<Job>) {
    tracing::info!(
        path = %cfg.path.display(),
        rotate = ?cfg.rotate,
        keep = cfg.keep,
        "CDR writer started"
    );
    let mut errors = ErrorReporter::default();
    let mut writer: Option<CdrWriter> = None;
    let mut job = None;
    loop {
        if writer.is_none() {
            match CdrWriter::open(cfg.clone()) {
                Ok(w) => writer = Some(w),
                Err(e) => errors.report(&e),
            }
        }
        // Everything queued now is one batch, flushed once at its end.
        let mut waiting = Vec::new();
        while let Some(j) = job.take() {
            match (j, writer.as_mut()) {
                (Job::Record(rec, mono, wall), Some(w)) => {
                    let cdr = Cdr::from_record(&rec, wall_clock_at(mono, wall));
                    match w.write(&cdr, SystemTime::now()) {
                        Ok(()) => metrics::counter!(names::CDR_RECORDS_WRITTEN_TOTAL).increment(1),
                        Err(e) => {
                            errors.report(&e);
                            count_dropped("write_error");
                        }
                    }
                }
                (Job::Record(..), None) => count_dropped("write_error"),
                (Job::Flush(done), _) => waiting.push(done),
            }
            job = rx.try_recv().ok();
        }
        if let Some(w) = writer.as_mut() {
            if let Err(e) = w.flush() {
                errors.report(&e);
            }
        }
        for done in waiting {
            let _ = done.try_send(());
        }
        job = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(j) => Some(j),
            Err(RecvTimeoutError::Timeout) => {
                if let Some(w) = writer.as_mut() {
                    if let Err(e) = w.tick(SystemTime::now()) {
                        errors.report(&e);
                    }
                }
                None
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sipborder-cdr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn record(cause: EndCause, code: u16, answered: bool) -> CallRecord {
        let t0 = Instant::now();
        CallRecord {
            a_call_id: "a-1@pbx".into(),
            b_call_id: "b-1@sbc".into(),
            a_zone: "lan".into(),
            b_trunk: Some("itsp".into()),
            final_code: code,
            cause,
            started: t0,
            first_provisional: Some(t0 + Duration::from_millis(300)),
            q850_cause: None,
            answered: answered.then(|| t0 + Duration::from_millis(1500)),
            ended: t0 + Duration::from_millis(61_500),
            media: [
                MediaTotals {
                    packets: 3000,
                    bytes: 516_000,
                    lost: 0,
                    jitter_ms: 1.5,
                    dropped_foreign: 0,
                },
                MediaTotals {
                    packets: 2850,
                    bytes: 490_200,
                    lost: 150,
                    jitter_ms: 4.0,
                    dropped_foreign: 2,
                },
            ],
            from: Some("1001".into()),
            to: Some("0049301234".into()),
        }
    }

    #[test]
    fn mos_known_points() {
        let clean = mos(0.0, 0.0, 0.0);
        assert!((clean - 4.4).abs() < 0.05, "{clean}");
        let five = mos(5.0, 0.0, 0.0);
        assert!(five < clean - 1.0, "{five}");
        let twenty = mos(20.0, 0.0, 0.0);
        assert!(twenty < 3.0 && twenty < five, "{twenty}");
        // Jitter and latency cost a little until the 177 ms knee, then a lot.
        assert!(mos(0.0, 20.0, 0.0) < clean);
        assert!(mos(0.0, 0.0, 600.0) < 4.0);
        // Nonsense inputs stay in range.
        assert_eq!(mos(100.0, 1e9, 1e9), 1.0);
        for v in [mos(f64::NAN, -1.0, f64::INFINITY), mos(-5.0, 0.0, 0.0)] {
            assert!((1.0..=4.5).contains(&v));
        }
    }

    #[test]
    fn dates_and_times_in_utc() {
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            rfc3339(at(1_700_000_000) + Duration::from_millis(250)),
            "2023-11-14T22:13:20.250Z"
        );
        assert_eq!(utc_date(at(4_102_444_799)), "2099-12-31");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn rotate_values() {
        assert_eq!(Rotate::parse("daily"), Ok(Rotate::Daily));
        assert_eq!(Rotate::parse("size:100MiB"), Ok(Rotate::Size(100 << 20)));
        assert_eq!(Rotate::parse("size:10kb"), Ok(Rotate::Size(10_000)));
        assert_eq!(Rotate::parse("size:512"), Ok(Rotate::Size(512)));
        for bad in ["weekly", "size:", "size:0", "size:10XB", "size:-1", "100MiB"] {
            assert!(Rotate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cdr_of_an_answered_call() {
        let rec = record(EndCause::Bye(Side::B), 200, true);
        let wall = at(1_700_000_000);
        let cdr = from_record(&rec, wall_clock_at(rec.started, wall));
        assert_eq!(cdr.start, "2023-11-14T22:13:20.000Z");
        assert_eq!(cdr.answer.as_deref(), Some("2023-11-14T22:13:21.500Z"));
        assert_eq!(cdr.end, "2023-11-14T22:14:21.500Z");
        assert_eq!(cdr.duration_s, 60.0);
        assert_eq!(cdr.setup_s, Some(1.5));
        assert_eq!(cdr.pdd_s, Some(0.3));
        assert_eq!((cdr.q850_cause, cdr.hangup_side, cdr.end_reason), (Some(16), "callee", "bye"));
        assert_eq!(cdr.media.b_to_a.loss_pct, 5.0);
        assert!(cdr.media.a_to_b.mos.unwrap() > cdr.media.b_to_a.mos.unwrap());
        let json: serde_json::Value = serde_json::to_value(&cdr).unwrap();
        assert_eq!(json["from"], "1001");
        assert_eq!(json["to"], "0049301234");
        assert_eq!(json["media"]["a_to_b"]["packets"], 3000);
    }

    #[test]
    fn cdr_of_failed_calls() {
        let busy = from_record(&record(EndCause::Rejected(486), 486, false), |_| at(0));
        assert_eq!((busy.q850_cause, busy.hangup_side), (Some(17), "callee"));
        assert_eq!((busy.duration_s, busy.answer.clone(), busy.setup_s), (0.0, None, None));
        let cancel = from_record(&record(EndCause::Cancelled, 487, false), |_| at(0));
        assert_eq!((cancel.q850_cause, cancel.hangup_side), (Some(16), "caller"));
        let ports = from_record(&record(EndCause::NoMediaPorts, 503, false), |_| at(0));
        assert_eq!((ports.q850_cause, ports.hangup_side), (Some(47), "sipborder"));
        let mut silent = record(EndCause::Bye(Side::A), 200, true);
        silent.media = [MediaTotals::default(); 2];
        let s = from_record(&silent, |_| at(0));
        assert_eq!((s.media.a_to_b.mos, s.media.a_to_b.loss_pct), (None, 0.0));
    }

    fn lines(p: &Path) -> usize {
        std::fs::read_to_string(p).map(|s| s.lines().count()).unwrap_or(0)
    }

    #[test]
    fn size_rotation_shifts_numbered_files() {
        let dir = tmp("size");
        let path = dir.join("cdr.jsonl");
        let cdr = from_record(&record(EndCause::Bye(Side::A), 200, true), |_| at(0));
        let one = serde_json::to_vec(&cdr).unwrap().len() as u64 + 1;
        let cfg = CdrConfig { path: path.clone(), rotate: Rotate::Size(one * 2), keep: 2 };
        let mut w = CdrWriter::open(cfg).unwrap();
        for _ in 0..7 {
            w.write(&cdr, at(0)).unwrap();
        }
        w.flush().unwrap();
        // 7 records, 2 per file: live has 1, .1 and .2 have 2 each, the oldest pair is gone.
        assert_eq!(lines(&path), 1);
        assert_eq!(lines(&CdrWriter::numbered(&path, 1)), 2);
        assert_eq!(lines(&CdrWriter::numbered(&path, 2)), 2);
        assert!(!CdrWriter::numbered(&path, 3).exists());
        for l in std::fs::read_to_string(CdrWriter::numbered(&path, 1)).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(v["a_call_id"], "a-1@pbx");
        }
        // A restart appends to the live file and knows its size.
        drop(w);
        let mut w = CdrWriter::open(CdrConfig {
            path: path.clone(),
            rotate: Rotate::Size(one * 2),
            keep: 2,
        })
        .unwrap();
        w.write(&cdr, at(0)).unwrap();
        w.flush().unwrap();
        assert_eq!(lines(&path), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn daily_rotation_names_files_by_utc_day_and_prunes() {
        let dir = tmp("daily");
        let path = dir.join("cdr.jsonl");
        let cdr = from_record(&record(EndCause::Bye(Side::A), 200, true), |_| at(0));
        let cfg = CdrConfig { path: path.clone(), rotate: Rotate::Daily, keep: 2 };
        let mut w = CdrWriter::open(cfg).unwrap();
        let day = 86_400;
        let base = 1_700_006_400 - 1_700_006_400 % day; // 2023-11-15T00:00:00Z
        w.write(&cdr, at(base + 10)).unwrap();
        w.write(&cdr, at(base + day - 1)).unwrap();
        w.write(&cdr, at(base + day)).unwrap(); // after midnight: the 15th is closed
        w.flush().unwrap();
        let d15 = dir.join("cdr-2023-11-15.jsonl");
        assert_eq!((lines(&d15), lines(&path)), (2, 1));
        // An idle midnight still closes the day.
        w.tick(at(base + 2 * day + 5)).unwrap();
        assert_eq!(lines(&dir.join("cdr-2023-11-16.jsonl")), 1);
        w.write(&cdr, at(base + 2 * day + 6)).unwrap();
        w.write(&cdr, at(base + 3 * day)).unwrap();
        w.flush().unwrap();
        // keep = 2: the 15th is pruned, the 16th and 17th stay.
        assert!(!d15.exists());
        assert!(dir.join("cdr-2023-11-16.jsonl").exists());
        assert!(dir.join("cdr-2023-11-17.jsonl").exists());
        assert_eq!(lines(&path), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unwritable_path_is_an_error_not_a_panic() {
        let dir = tmp("bad");
        let blocker = dir.join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let cfg = CdrConfig { path: blocker.join("cdr.jsonl"), rotate: Rotate::Daily, keep: 1 };
        let err = CdrWriter::open(cfg).unwrap_err();
        assert_eq!(err.op(), "open");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_section() {
        const ZONE: &str = "zones:\n  - name: lan\n    udp: 127.0.0.1:5060\n";
        let c = crate::config::load_str(
            &format!("{ZONE}cdr:\n  path: /tmp/x/cdr.jsonl\n  rotate: size:1MiB\n"),
            "t.yaml",
        )
        .unwrap();
        let cfg = CdrConfig::from(c.cdr.as_ref().unwrap());
        assert_eq!(cfg.rotate, Rotate::Size(1 << 20));
        assert_eq!((cfg.keep, cfg.path), (30, PathBuf::from("/tmp/x/cdr.jsonl")));
        let c = crate::config::load_str(&format!("{ZONE}cdr:\n  path: c.jsonl\n"), "t.yaml");
        assert_eq!(c.unwrap().cdr.unwrap().rotate, Rotate::Daily);
        let e = crate::config::load_str(
            &format!("{ZONE}cdr:\n  path: c.jsonl\n  rotate: hourly\n"),
            "t.yaml",
        )
        .unwrap_err();
        assert_eq!((e.0[0].line, e.0[0].column), (6, 11), "{e}");
        assert!(e.0[0].message.contains("size:100MiB"), "{e}");
        let e = crate::config::load_str(&format!("{ZONE}cdr:\n  path: c\n  rotat: daily\n"), "t");
        assert!(e.unwrap_err().to_string().contains("unknown field `rotat`"));
    }

    #[test]
    fn dated_names() {
        assert!(is_dated_suffix("2024-01-31"));
        assert!(is_dated_suffix("2024-01-31.2"));
        assert!(!is_dated_suffix("2024-01-3x"));
        assert!(!is_dated_suffix("2024-01-31."));
        assert_eq!(
            CdrWriter::dated_path(Path::new("/var/log/sb/cdr.jsonl"), "2024-01-31"),
            PathBuf::from("/var/log/sb/cdr-2024-01-31.jsonl")
        );
    }
}

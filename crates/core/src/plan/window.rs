//! Cutover windows: when downtime is allowed, and whether a cutover of a given length fits.
//!
//! A cutover must fit inside one window. Windows that happen to overlap or touch are not joined:
//! each one is what a change board approved, and two approvals side by side are not one
//! approval for the longer stretch.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The longest window accepted: a week-end freeze is the longest anyone asks for, and a longer
/// one is more likely a unit mistake than a real agreement.
pub const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);

/// A stretch of time in which groups may be taken offline.
///
/// A recurring window's cron fields (five: minute, hour, day of month, month, day of week) are
/// read on the wall clock of `time_zone`, and `duration` is elapsed time. Where daylight saving
/// moves the clock:
/// - a start the clock skips (02:30 on a spring-forward night in Europe/Berlin) opens the window
///   when the clock resumes (03:00 summer time), as cron itself runs skipped jobs, so a nightly
///   window is not lost that night; several starts inside one gap open one window;
/// - a start the clock passes twice (02:30 on a fall-back night) opens the window once, at the
///   first pass;
/// - the window lasts `duration` whatever the clock does: an operator who agreed to four hours of
///   downtime gets four hours, not three or five.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CutoverWindow {
    /// One stretch of time; `end` must be after `start`.
    Interval {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    /// A window that recurs.
    Recurring {
        /// Five cron fields (minute, hour, day of month, month, day of week) on the wall clock
        /// of `time_zone`, e.g. `0 22 * * 6`; it must fire at least once.
        #[schema(min_length = 1)]
        cron: String,
        /// Seconds, up to 7 days (text such as `4h`, `90m`, `1h 30m` is read too).
        #[serde(
            serialize_with = "serialize_duration",
            deserialize_with = "deserialize_duration"
        )]
        #[schema(value_type = u64, minimum = 1, maximum = 604800)]
        duration: Duration,
        /// IANA name, e.g. `Europe/Berlin`.
        #[schema(value_type = IanaTimeZone)]
        time_zone: String,
    },
}

/// The OpenAPI schema `TimeZone`: every IANA time zone name the server knows.
pub struct IanaTimeZone;

impl utoipa::PartialSchema for IanaTimeZone {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(chrono_tz::TZ_VARIANTS.iter().map(|zone| zone.name())))
            .description(Some("An IANA time zone name, e.g. `Europe/Berlin`."))
            .into()
    }
}

impl utoipa::ToSchema for IanaTimeZone {
    fn name() -> std::borrow::Cow<'static, str> {
        "TimeZone".into()
    }
}

/// Whether a cutover of the needed length can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fit", rename_all = "snake_case")]
pub enum WindowFit {
    /// It can start now; `closes_at` is when the window it runs in closes, `None` when no window
    /// is configured and time is unrestricted.
    Now { closes_at: Option<DateTime<Utc>> },
    /// The earliest window with room opens at `opens_at`.
    Later { opens_at: DateTime<Utc> },
    /// No window is long enough, or none opens again.
    Never,
}

impl CutoverWindow {
    pub fn validate(&self) -> Result<(), String> {
        match self {
            CutoverWindow::Interval { start, end } => {
                if end <= start {
                    return Err(format!("window end {end} is not after its start {start}"));
                }
                Ok(())
            }
            CutoverWindow::Recurring {
                cron: text,
                duration,
                ..
            } => {
                if duration.is_zero() {
                    return Err("window duration must be longer than zero".to_owned());
                }
                if *duration > MAX_WINDOW {
                    return Err(format!(
                        "window duration {} is longer than 7 days",
                        humantime::format_duration(*duration)
                    ));
                }
                let (cron, _) = self.schedule()?.expect("a recurring window has a schedule");
                let epoch = DateTime::<Utc>::UNIX_EPOCH;
                if cron.find_next_occurrence(&epoch, true).is_err() {
                    return Err(format!("cron `{text}` never fires"));
                }
                Ok(())
            }
        }
    }

    /// The parsed cron and time zone of a recurring window, `None` for an interval.
    fn schedule(&self) -> Result<Option<(Cron, Tz)>, String> {
        let CutoverWindow::Recurring {
            cron, time_zone, ..
        } = self
        else {
            return Ok(None);
        };
        let parsed = Cron::new(cron)
            .parse()
            .map_err(|err| format!("cron `{cron}` does not parse: {err}"))?;
        let zone = Tz::from_str(time_zone).map_err(|_| {
            format!("unknown time zone `{time_zone}`: use an IANA name such as Europe/Berlin")
        })?;
        Ok(Some((parsed, zone)))
    }
}

/// Whether a cutover needing `needed` can start at `now`, or when it next can. No windows means
/// no restriction. Windows that do not validate are left out, so a broken window never opens
/// time that nobody approved; validate windows where they are configured.
pub fn fits(windows: &[CutoverWindow], now: DateTime<Utc>, needed: Duration) -> WindowFit {
    if windows.is_empty() {
        return WindowFit::Now { closes_at: None };
    }
    let Ok(needed) = TimeDelta::from_std(needed) else {
        return WindowFit::Never;
    };
    let mut closes_at: Option<DateTime<Utc>> = None;
    let mut opens_at: Option<DateTime<Utc>> = None;
    for window in windows.iter().filter(|w| w.validate().is_ok()) {
        let fit = match window {
            CutoverWindow::Interval { start, end } => interval_fit(*start, *end, now, needed),
            CutoverWindow::Recurring { duration, .. } => {
                let Ok(Some((cron, zone))) = window.schedule() else {
                    continue;
                };
                let Ok(length) = TimeDelta::from_std(*duration) else {
                    continue;
                };
                recurring_fit(&cron, zone, length, now, needed)
            }
        };
        match fit {
            WindowFit::Now {
                closes_at: Some(at),
            } => {
                closes_at = Some(closes_at.map_or(at, |best| best.max(at)));
            }
            WindowFit::Later { opens_at: at } => {
                opens_at = Some(opens_at.map_or(at, |best| best.min(at)));
            }
            WindowFit::Now { closes_at: None } | WindowFit::Never => {}
        }
    }
    match (closes_at, opens_at) {
        (Some(at), _) => WindowFit::Now {
            closes_at: Some(at),
        },
        (None, Some(at)) => WindowFit::Later { opens_at: at },
        (None, None) => WindowFit::Never,
    }
}

fn interval_fit(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    now: DateTime<Utc>,
    needed: TimeDelta,
) -> WindowFit {
    if start <= now && end - now >= needed {
        WindowFit::Now {
            closes_at: Some(end),
        }
    } else if start > now && end - start >= needed {
        WindowFit::Later { opens_at: start }
    } else {
        WindowFit::Never
    }
}

/// Every occurrence lasts `length`, so the one that started last before `now` has the most room
/// left, and the first one after `now` is the earliest that can open.
fn recurring_fit(
    cron: &Cron,
    zone: Tz,
    length: TimeDelta,
    now: DateTime<Utc>,
    needed: TimeDelta,
) -> WindowFit {
    if length < needed {
        return WindowFit::Never;
    }
    // Wall-clock time runs back by at most a few hours at a fall-back; starting this much earlier
    // finds every occurrence that could still be open at `now`.
    let slack = TimeDelta::hours(3);
    let Some(scan_from) = now.checked_sub_signed(length + slack) else {
        return WindowFit::Never;
    };
    let mut floating = Utc.from_utc_datetime(&scan_from.with_timezone(&zone).naive_local());
    let mut inclusive = true;
    let mut last_start: Option<DateTime<Utc>> = None;
    let mut best_close: Option<DateTime<Utc>> = None;
    // Croner runs on a clock without daylight saving, so it sees each wall-clock time exactly
    // once; `resolve` then places that wall-clock time on the real time line.
    while let Ok(next) = cron.find_next_occurrence(&floating, inclusive) {
        inclusive = false;
        floating = next;
        let Some(start) = resolve(zone, next.naive_utc()) else {
            continue;
        };
        if last_start.is_some_and(|previous| start <= previous) {
            continue;
        }
        last_start = Some(start);
        if start > now {
            return match best_close {
                Some(close) => WindowFit::Now {
                    closes_at: Some(close),
                },
                None => WindowFit::Later { opens_at: start },
            };
        }
        let close = start + length;
        if close - now >= needed {
            best_close = Some(close);
        }
    }
    match best_close {
        Some(close) => WindowFit::Now {
            closes_at: Some(close),
        },
        None => WindowFit::Never,
    }
}

/// The instant a wall-clock time names in `zone`: the first pass when it occurs twice, the end
/// of the gap when the clock skips it.
fn resolve(zone: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
        LocalResult::None => {
            // Gaps start and end on whole minutes; the longest on record (Samoa, 2011) is a day.
            (1..=48 * 60).find_map(|minutes| {
                let later = local.checked_add_signed(TimeDelta::minutes(minutes))?;
                match zone.from_local_datetime(&later) {
                    LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => {
                        Some(at.with_timezone(&Utc))
                    }
                    LocalResult::None => None,
                }
            })
        }
    }
}

fn serialize_duration<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&humantime::format_duration(*duration).to_string())
}

fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Seconds(u64),
        Words(String),
    }
    match Text::deserialize(deserializer)? {
        Text::Seconds(seconds) => Ok(Duration::from_secs(seconds)),
        Text::Words(text) => humantime::parse_duration(text.trim()).map_err(|err| {
            serde::de::Error::custom(format!(
                "duration `{text}` is neither seconds nor text such as `4h` or `1h 30m`: {err}"
            ))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339 instant")
    }

    fn hours(h: u64) -> Duration {
        Duration::from_secs(h * 3600)
    }

    fn minutes(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    fn nightly_berlin(cron: &str, duration: Duration) -> CutoverWindow {
        CutoverWindow::Recurring {
            cron: cron.to_owned(),
            duration,
            time_zone: "Europe/Berlin".to_owned(),
        }
    }

    #[test]
    fn no_windows_means_no_restriction() {
        assert_eq!(
            fits(&[], at("2026-01-01T00:00:00Z"), hours(100)),
            WindowFit::Now { closes_at: None }
        );
    }

    #[test]
    fn an_interval_fits_now_later_or_never() {
        let window = [CutoverWindow::Interval {
            start: at("2026-05-01T20:00:00Z"),
            end: at("2026-05-02T02:00:00Z"),
        }];
        assert_eq!(
            fits(&window, at("2026-05-01T12:00:00Z"), hours(4)),
            WindowFit::Later {
                opens_at: at("2026-05-01T20:00:00Z")
            }
        );
        assert_eq!(
            fits(&window, at("2026-05-01T20:00:00Z"), hours(6)),
            WindowFit::Now {
                closes_at: Some(at("2026-05-02T02:00:00Z"))
            }
        );
        assert_eq!(
            fits(&window, at("2026-05-01T23:00:00Z"), hours(4)),
            WindowFit::Never,
            "three hours left is not four"
        );
        assert_eq!(
            fits(&window, at("2026-05-01T12:00:00Z"), hours(7)),
            WindowFit::Never
        );
        assert_eq!(
            fits(&window, at("2026-05-02T02:00:00Z"), minutes(1)),
            WindowFit::Never
        );
    }

    #[test]
    fn the_window_with_the_most_room_wins_and_windows_are_not_joined() {
        let windows = [
            CutoverWindow::Interval {
                start: at("2026-05-01T20:00:00Z"),
                end: at("2026-05-01T22:00:00Z"),
            },
            CutoverWindow::Interval {
                start: at("2026-05-01T21:00:00Z"),
                end: at("2026-05-01T23:00:00Z"),
            },
            CutoverWindow::Interval {
                start: at("2026-05-03T00:00:00Z"),
                end: at("2026-05-03T05:00:00Z"),
            },
        ];
        assert_eq!(
            fits(&windows, at("2026-05-01T21:00:00Z"), hours(1)),
            WindowFit::Now {
                closes_at: Some(at("2026-05-01T23:00:00Z"))
            }
        );
        // 20:00 to 23:00 is covered, but by two approvals of two hours each.
        assert_eq!(
            fits(&windows, at("2026-05-01T20:00:00Z"), hours(3)),
            WindowFit::Later {
                opens_at: at("2026-05-03T00:00:00Z")
            }
        );
    }

    #[test]
    fn a_nightly_window_opens_every_night_on_local_time() {
        let window = [nightly_berlin("30 2 * * *", hours(4))];
        // Winter: 02:30 CET is 01:30 UTC.
        assert_eq!(
            fits(&window, at("2026-01-10T12:00:00Z"), hours(1)),
            WindowFit::Later {
                opens_at: at("2026-01-11T01:30:00Z")
            }
        );
        // Summer: 02:30 CEST is 00:30 UTC.
        assert_eq!(
            fits(&window, at("2026-07-10T02:00:00Z"), hours(1)),
            WindowFit::Now {
                closes_at: Some(at("2026-07-10T04:30:00Z"))
            }
        );
    }

    #[test]
    fn a_start_the_spring_forward_skips_opens_when_the_clock_resumes() {
        // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never happens.
        let window = [nightly_berlin("30 2 * * *", hours(4))];
        assert_eq!(
            fits(&window, at("2026-03-29T00:00:00Z"), hours(1)),
            WindowFit::Later {
                opens_at: at("2026-03-29T01:00:00Z")
            }
        );
        // Four elapsed hours from 03:00 CEST: closes 07:00 CEST.
        assert_eq!(
            fits(&window, at("2026-03-29T01:30:00Z"), hours(1)),
            WindowFit::Now {
                closes_at: Some(at("2026-03-29T05:00:00Z"))
            }
        );
        // The night after is ordinary summer time again.
        assert_eq!(
            fits(&window, at("2026-03-29T06:00:00Z"), hours(1)),
            WindowFit::Later {
                opens_at: at("2026-03-30T00:30:00Z")
            }
        );
    }

    #[test]
    fn several_starts_inside_the_gap_open_one_window() {
        let window = [nightly_berlin("*/15 2 * * *", minutes(10))];
        assert_eq!(
            fits(&window, at("2026-03-29T00:59:00Z"), minutes(5)),
            WindowFit::Later {
                opens_at: at("2026-03-29T01:00:00Z")
            }
        );
        // After the one window at 03:00 CEST, the next is 02:00 CEST the night after.
        assert_eq!(
            fits(&window, at("2026-03-29T01:05:00Z"), minutes(6)),
            WindowFit::Later {
                opens_at: at("2026-03-30T00:00:00Z")
            }
        );
    }

    #[test]
    fn a_start_the_fall_back_repeats_opens_once_at_the_first_pass() {
        // 2026-10-25 in Berlin: 03:00 CEST falls back to 02:00 CET, so 02:30 happens at 00:30 UTC
        // and again at 01:30 UTC.
        let window = [nightly_berlin("30 2 * * *", hours(4))];
        assert_eq!(
            fits(&window, at("2026-10-25T00:00:00Z"), hours(1)),
            WindowFit::Later {
                opens_at: at("2026-10-25T00:30:00Z")
            }
        );
        assert_eq!(
            fits(&window, at("2026-10-25T01:00:00Z"), hours(1)),
            WindowFit::Now {
                closes_at: Some(at("2026-10-25T04:30:00Z"))
            }
        );
        // Not enough room left in the first pass, and no second window at 01:30 UTC.
        assert_eq!(
            fits(&window, at("2026-10-25T00:45:00Z"), hours(4)),
            WindowFit::Later {
                opens_at: at("2026-10-26T01:30:00Z")
            }
        );
    }

    #[test]
    fn a_window_opening_every_minute_for_a_week_is_answered_from_its_latest_start() {
        let window = [CutoverWindow::Recurring {
            cron: "* * * * *".to_owned(),
            duration: MAX_WINDOW,
            time_zone: "UTC".to_owned(),
        }];
        assert_eq!(
            fits(&window, at("2026-06-01T12:00:30Z"), hours(24 * 7 - 1)),
            WindowFit::Now {
                closes_at: Some(at("2026-06-08T12:00:00Z"))
            }
        );
    }

    #[test]
    fn a_window_shorter_than_the_cutover_never_fits() {
        let window = [nightly_berlin("30 2 * * *", hours(4))];
        assert_eq!(
            fits(&window, at("2026-01-10T12:00:00Z"), hours(5)),
            WindowFit::Never
        );
    }

    #[test]
    fn invalid_windows_open_nothing() {
        let windows = [
            nightly_berlin("not cron", hours(4)),
            CutoverWindow::Recurring {
                cron: "30 2 * * *".to_owned(),
                duration: hours(4),
                time_zone: "Mars/Olympus".to_owned(),
            },
        ];
        assert_eq!(
            fits(&windows, at("2026-01-10T12:00:00Z"), minutes(1)),
            WindowFit::Never
        );
    }

    #[test]
    fn validation_explains_each_mistake() {
        let backwards = CutoverWindow::Interval {
            start: at("2026-05-02T00:00:00Z"),
            end: at("2026-05-01T00:00:00Z"),
        };
        assert_eq!(
            backwards.validate(),
            Err(
                "window end 2026-05-01 00:00:00 UTC is not after its start 2026-05-02 00:00:00 UTC"
                    .to_owned()
            )
        );
        let empty = CutoverWindow::Interval {
            start: at("2026-05-01T00:00:00Z"),
            end: at("2026-05-01T00:00:00Z"),
        };
        assert!(empty.validate().is_err());

        let bad_cron = nightly_berlin("61 2 * * *", hours(4))
            .validate()
            .expect_err("cron");
        assert!(
            bad_cron.starts_with("cron `61 2 * * *` does not parse: "),
            "{bad_cron}"
        );
        let with_seconds = nightly_berlin("0 30 2 * * *", hours(4)).validate();
        assert!(with_seconds.is_err(), "five fields only");
        assert_eq!(
            nightly_berlin("0 0 30 2 *", hours(4)).validate(),
            Err("cron `0 0 30 2 *` never fires".to_owned())
        );
        let zone = CutoverWindow::Recurring {
            cron: "30 2 * * *".to_owned(),
            duration: hours(4),
            time_zone: "Europe/Berlim".to_owned(),
        };
        assert_eq!(
            zone.validate(),
            Err(
                "unknown time zone `Europe/Berlim`: use an IANA name such as Europe/Berlin"
                    .to_owned()
            )
        );
        assert_eq!(
            nightly_berlin("30 2 * * *", Duration::ZERO).validate(),
            Err("window duration must be longer than zero".to_owned())
        );
        assert_eq!(
            nightly_berlin("30 2 * * *", MAX_WINDOW + Duration::from_secs(1)).validate(),
            Err("window duration 7days 1s is longer than 7 days".to_owned())
        );
        assert_eq!(nightly_berlin("30 2 * * *", MAX_WINDOW).validate(), Ok(()));
        assert_eq!(nightly_berlin("@daily", hours(1)).validate(), Ok(()));
    }

    #[test]
    fn windows_deserialize_with_a_kind_tag_and_either_duration_form() {
        let json = r#"[
            {"kind": "interval", "start": "2026-05-01T20:00:00Z", "end": "2026-05-02T02:00:00Z"},
            {"kind": "recurring", "cron": "30 2 * * 6", "duration": "4h 30m",
             "time_zone": "Europe/Berlin"},
            {"kind": "recurring", "cron": "0 22 * * 1-5", "duration": 7200,
             "time_zone": "America/New_York"}
        ]"#;
        let windows: Vec<CutoverWindow> = serde_json::from_str(json).expect("windows");
        assert_eq!(
            windows[1],
            CutoverWindow::Recurring {
                cron: "30 2 * * 6".to_owned(),
                duration: minutes(270),
                time_zone: "Europe/Berlin".to_owned(),
            }
        );
        assert!(matches!(
            windows[2],
            CutoverWindow::Recurring { duration, .. } if duration == hours(2)
        ));
        let text = serde_json::to_string(&windows[1]).expect("json");
        assert!(text.contains(r#""duration":"4h 30m""#), "{text}");
        let back: CutoverWindow = serde_json::from_str(&text).expect("round trip");
        assert_eq!(back, windows[1]);

        let err = serde_json::from_str::<CutoverWindow>(
            r#"{"kind": "recurring", "cron": "* * * * *", "duration": "four hours",
                "time_zone": "UTC"}"#,
        )
        .expect_err("bad duration");
        assert!(
            err.to_string().contains("neither seconds nor text"),
            "{err}"
        );
        assert!(
            serde_json::from_str::<CutoverWindow>(
                r#"{"kind": "interval", "start": "2026-05-01T20:00:00Z",
                    "end": "2026-05-02T02:00:00Z", "tz": "UTC"}"#
            )
            .is_err(),
            "unknown fields are refused"
        );
    }

    const CRONS: [&str; 6] = [
        "30 2 * * *",
        "0 22 * * 1-5",
        "*/30 * * * *",
        "0 0 1 * *",
        "15 1,3 * * 0",
        "0 2 29 2 *",
    ];
    const ZONES: [&str; 5] = [
        "Europe/Berlin",
        "America/New_York",
        "Australia/Lord_Howe",
        "Pacific/Apia",
        "UTC",
    ];

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2024 to 2028: covers leap days and both daylight saving transitions of each zone.
        (1_704_067_200i64..1_830_297_600)
            .prop_map(|seconds| DateTime::from_timestamp(seconds, 0).expect("in range"))
    }

    fn window() -> impl Strategy<Value = CutoverWindow> {
        prop_oneof![
            (instant(), 1i64..400_000).prop_map(|(start, length)| CutoverWindow::Interval {
                start,
                end: start + TimeDelta::seconds(length),
            }),
            (0..CRONS.len(), 1u64..=7 * 24 * 60, 0..ZONES.len()).prop_map(
                |(cron, length, zone)| CutoverWindow::Recurring {
                    cron: CRONS[cron].to_owned(),
                    duration: minutes(length),
                    time_zone: ZONES[zone].to_owned(),
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn a_fit_always_has_the_room_it_promises(
            windows in proptest::collection::vec(window(), 1..4),
            now in instant(),
            needed_minutes in 1u64..3 * 24 * 60,
        ) {
            let needed = minutes(needed_minutes);
            match fits(&windows, now, needed) {
                WindowFit::Now { closes_at } => {
                    let closes_at = closes_at.expect("windows were given");
                    prop_assert!(closes_at - now >= TimeDelta::from_std(needed).unwrap());
                }
                WindowFit::Later { opens_at } => {
                    prop_assert!(opens_at > now);
                    // The window that opens then must have room then.
                    let then = fits(&windows, opens_at, needed);
                    prop_assert!(matches!(then, WindowFit::Now { .. }), "{:?}", then);
                }
                WindowFit::Never => {}
            }
        }

        #[test]
        fn an_interval_fit_is_exactly_the_arithmetic(
            start in instant(),
            length in 1i64..400_000,
            offset in -400_000i64..400_000,
            needed_seconds in 1u64..400_000,
        ) {
            let end = start + TimeDelta::seconds(length);
            let now = start + TimeDelta::seconds(offset);
            let needed = TimeDelta::seconds(needed_seconds as i64);
            let expected = if start <= now && end - now >= needed {
                WindowFit::Now { closes_at: Some(end) }
            } else if start > now && end - start >= needed {
                WindowFit::Later { opens_at: start }
            } else {
                WindowFit::Never
            };
            let windows = [CutoverWindow::Interval { start, end }];
            prop_assert_eq!(fits(&windows, now, Duration::from_secs(needed_seconds)), expected);
        }
    }
}

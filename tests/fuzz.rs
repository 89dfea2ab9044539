//! Fuzzing of the parsers that take bytes from outside: inventory documents (REST bodies and
//! agents' protobuf reports), perf batches (protobuf series and their stored encoding), agents'
//! task results, and job requests in TOML or JSON. No input may panic; what a parser accepts
//! must survive the steps that follow it (validation, canonical form, hashing, encoding).
//!
//! Inputs are valid documents with random mutations (bytes changed, cut, repeated, tokens
//! inserted) and random structured values, since purely random bytes seldom get past the
//! first brace. Each target runs for `FERRY_FUZZ_SECONDS` (default 2; `.ci/run` gives more),
//! in rounds of 64 cases. A failing case is shrunk, and its seed is kept in
//! `tests/fuzz.proptest-regressions`, which is committed, so every later run tries it first.

mod common;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use prost::Message;

use ferry::cli::jobs::parse_request;
use ferry::http::extract::parse_json;
use ferry::model::diff::diff_inventories;
use ferry::model::{InventoryDocument, JobRequest};
use ferry::perf::batch::Batch;
use ferry::perf::chunk::RawChunk;
use ferry::plan::window::fits;
use ferry::protocol::convert;
use ferry::protocol::pb;

/// Runs `check` on values of `strategy` until the time budget is spent, at least one round.
fn fuzz<S>(name: &str, strategy: S, check: impl Fn(S::Value))
where
    S: Strategy,
    S::Value: Debug,
{
    let budget = std::env::var("FERRY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(Duration::from_secs(2), Duration::from_secs_f64);
    let started = Instant::now();
    let mut cases = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases: 64,
            failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fuzz.proptest-regressions"
            )))),
            ..Config::default()
        });
        if let Err(failure) = runner.run(&strategy, |value| {
            check(value);
            Ok(())
        }) {
            panic!("{name}: {failure}");
        }
        cases += 64;
        if started.elapsed() >= budget {
            break;
        }
    }
    eprintln!("{name}: {cases} cases in {:.1?}", started.elapsed());
}

/// One change to a text or a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    /// Replaces the byte at (position modulo length).
    Set(usize, u8),
    /// Removes up to `len` bytes from a position.
    Cut(usize, usize),
    /// Repeats up to `len` bytes from a position just after them.
    Repeat(usize, usize),
    /// Inserts a token at a position.
    Insert(usize, &'static str),
}

/// Tokens that break parsers: quotes and brackets, extreme numbers, escapes, control and
/// multi-byte characters, nulls and type changes.
const TOKENS: &[&str] = &[
    "\"",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "null",
    "true",
    "-1",
    "0",
    "1e999",
    "-9223372036854775809",
    "18446744073709551616",
    "0.5",
    "\"\\u0000\"",
    "\\",
    "\"\\ud800\"",
    "\u{7}",
    "é",
    "\u{202e}",
    "  ",
    "\n",
    "=",
    "[[",
    "]]",
    "#",
    "'",
    "\"\"\"",
    "{}",
    "[]",
    "NaN",
    "inf",
    "..",
    "C:\\..\\x",
    "\\\\host\\share",
    "2026-13-45T25:61:61Z",
    "* * * * *",
    "0 0 31 2 *",
    "Mars/Olympus",
    "P1D",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::Set(at, b)),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| Mutation::Cut(at, len)),
        (any::<usize>(), 1..64usize).prop_map(|(at, len)| Mutation::Repeat(at, len)),
        (any::<usize>(), proptest::sample::select(TOKENS))
            .prop_map(|(at, t)| Mutation::Insert(at, t)),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Set(at, b) => {
                if !bytes.is_empty() {
                    bytes[at % len] = b;
                }
            }
            Mutation::Cut(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    bytes.drain(at..end);
                }
            }
            Mutation::Repeat(at, n) => {
                let at = at % len;
                let end = (at + n).min(bytes.len());
                if at < end {
                    let copy = bytes[at..end].to_vec();
                    bytes.splice(end..end, copy);
                }
            }
            Mutation::Insert(at, token) => {
                let at = (at % (bytes.len() + 1)).min(bytes.len());
                bytes.splice(at..at, token.bytes());
            }
        }
    }
    bytes
}

/// A valid document, then some mutations, or a few random bytes.
fn mutated(seed: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        9 => proptest::collection::vec(mutation(), 1..8)
            .prop_map(move |ms| mutate(seed.clone(), &ms)),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

/// What every accepted inventory must survive: validation, and when valid the canonical form,
/// whose JSON parses back to the same content hash, and a diff against the original.
fn check_inventory(mut document: InventoryDocument, original: &InventoryDocument) {
    if !document.validate().is_empty() {
        return;
    }
    document.canonicalize();
    let (json, hash) = document.canonical_json();
    let mut again: InventoryDocument = serde_json::from_str(&json).expect("canonical JSON parses");
    again.canonicalize();
    assert_eq!(again.canonical_json().1, hash, "canonical form is stable");
    let _ = diff_inventories(original, &document).change_summary();
}

#[test]
fn inventory_documents_in_json() {
    let original = common::sample_inventory(2, 3, 2);
    let seed = serde_json::to_vec(&original).unwrap();
    fuzz("inventory JSON", mutated(seed), |bytes| {
        if let Ok(document) = parse_json::<InventoryDocument>(&bytes) {
            check_inventory(document, &original);
        }
    });
}

#[test]
fn inventory_reports_in_protobuf() {
    let original = common::sample_inventory(2, 3, 2);
    let seed = pb::InventoryReport {
        inventory: Some(pb::InventoryDocument::from(original.clone())),
        cluster: "FS-OLD".into(),
    }
    .encode_to_vec();
    fuzz("inventory protobuf", mutated(seed), |bytes| {
        let Ok(report) = pb::InventoryReport::decode(bytes.as_slice()) else {
            return;
        };
        if let Some(Ok(document)) = report.inventory.map(convert::inventory_document) {
            check_inventory(document, &original);
        }
    });
}

#[test]
fn task_results_from_agents() {
    let inventory = common::sample_inventory(1, 2, 1);
    let results: Vec<Vec<u8>> = [
        pb::succeeded::Report::Inventory(inventory.into()),
        pb::succeeded::Report::Echo(pb::EchoReport {
            text: "hello".into(),
            slept_ms: 5,
        }),
    ]
    .into_iter()
    .map(|report| {
        pb::TaskResult {
            task: Some(pb::TaskRef {
                task_id: uuid::Uuid::now_v7().to_string(),
                attempt: 1,
                generation: 1,
            }),
            outcome: Some(pb::task_result::Outcome::Succeeded(pb::Succeeded {
                report: Some(report),
            })),
            final_progress: None,
        }
        .encode_to_vec()
    })
    .collect();
    let strategy = prop_oneof![mutated(results[0].clone()), mutated(results[1].clone())];
    fuzz("task results", strategy, |bytes| {
        if let Ok(result) = pb::TaskResult::decode(bytes.as_slice()) {
            let _ = convert::task_result(result);
        }
    });
}

/// Series with any names, counters, sources, timestamps and values, some of them valid.
fn perf_series() -> impl Strategy<Value = pb::PerfSeries> {
    let now_ms = Utc::now().timestamp_millis();
    let at = prop_oneof![
        4 => now_ms - 3_600_000..now_ms,
        1 => any::<i64>(),
    ];
    let value = prop_oneof![
        4 => 0.0..1e6f64,
        1 => any::<f64>(),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
    ];
    (
        prop_oneof![Just("n1".to_string()), ".{0,8}"],
        prop_oneof![Just("F:".to_string()), ".{0,8}"],
        -1..12i32,
        -1..5i32,
        proptest::collection::vec((at, value), 0..40),
    )
        .prop_map(|(node, volume, counter, source, points)| {
            let (at_ms, values) = points.into_iter().unzip();
            pb::PerfSeries {
                node,
                volume,
                counter,
                source,
                at_ms,
                values,
            }
        })
}

#[test]
fn perf_batches_and_their_stored_form() {
    let strategy = (
        proptest::collection::vec(perf_series(), 0..6),
        proptest::collection::vec(mutation(), 0..4),
    );
    fuzz("perf batches", strategy, |(series, mutations)| {
        let bytes = mutate(
            pb::PerfBatch {
                samples: vec![],
                series,
            }
            .encode_to_vec(),
            &mutations,
        );
        let Ok(batch) = pb::PerfBatch::decode(bytes.as_slice()) else {
            return;
        };
        let Ok(series) = convert::perf::series(batch.series, "n1") else {
            return;
        };
        let Ok(batch) = Batch::new(series, Utc::now()) else {
            return;
        };
        let stored = batch.encode();
        assert_eq!(
            Batch::decode(&stored).expect("a stored batch decodes"),
            batch
        );
        // Stored bytes can be damaged on disk: decoding them fails, it does not panic.
        let damaged = mutate(stored, &mutations);
        let _ = Batch::decode(&damaged);
        for s in batch.series() {
            let chunk = RawChunk {
                at_ms: s.at_ms.clone(),
                values: s.values.clone(),
            };
            let encoded = chunk.encode();
            assert_eq!(RawChunk::decode(&encoded).expect("a chunk decodes"), chunk);
            let _ = RawChunk::decode(&mutate(encoded, &mutations));
        }
    });
}

const JOB_TOML: &str = r#"
name = "move"
source = "FS-OLD"
target = "FS-NEW"
interim = "FS-MID"
groups = ["FileServer1", "FileServer2"]
skeleton_depth = 3
require_approval = true
approval_ttl_seconds = 3600
max_active_groups = 4
max_cluster_cutovers = 2
[disk_mapping]
"Cluster Disk 1" = "Cluster Disk 7"
[[windows]]
kind = "recurring"
cron = "0 22 * * 6"
duration = "4h"
time_zone = "Europe/Berlin"
[[windows]]
kind = "interval"
start = "2026-12-24T22:00:00Z"
end = "2026-12-25T06:00:00Z"
"#;

/// What an accepted request must survive: validation, and for valid windows the question the
/// scheduler asks of them.
fn check_job(request: JobRequest) {
    if !request.validate().is_empty() {
        return;
    }
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap();
    let _ = fits(&request.windows, now, Duration::from_secs(30 * 60));
}

#[test]
fn job_requests_in_toml_and_json() {
    let seed_toml = JOB_TOML.as_bytes().to_vec();
    let seed_json =
        serde_json::to_vec(&parse_request(JOB_TOML, false).expect("the seed parses")).unwrap();
    let strategy = prop_oneof![
        mutated(seed_toml).prop_map(|b| (b, false)),
        mutated(seed_json).prop_map(|b| (b, true)),
    ];
    fuzz("job requests", strategy, |(bytes, is_json)| {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(request) = parse_request(&text, is_json) {
            check_job(request);
        }
    });
}

/// Found by `inventory_reports_in_protobuf`: a fact holding a float whose shortest decimal form
/// the default JSON parser read back one unit in the last place off, so the stored snapshot's
/// document hashed differently from the one imported.
#[test]
fn a_float_fact_reads_back_as_the_same_float() {
    let mut document = common::sample_inventory(1, 1, 1);
    let value = f64::from_bits(10_000f64.to_bits() + 6);
    document.nodes[0]
        .facts
        .insert("max_shares".into(), serde_json::json!(value));
    document.canonicalize();
    let (json, hash) = document.canonical_json();
    let mut again: InventoryDocument = serde_json::from_str(&json).unwrap();
    assert_eq!(again.nodes[0].facts["max_shares"].as_f64(), Some(value));
    again.canonicalize();
    assert_eq!(again.canonical_json().1, hash);
}

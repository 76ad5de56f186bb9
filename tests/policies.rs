//! Every shipped policy in policies/ loads, carries tests, and passes them.

use sipborder::policy::compile::load_file;
use sipborder::policy::testing::run_tests;
use std::path::PathBuf;

fn policy_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn shipped_policies_are_there() {
    let names: Vec<String> = policy_files()
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    for want in ["asterisk.yaml", "cucm.yaml", "itsp-generic.yaml", "user-agent.yaml"] {
        assert!(names.iter().any(|n| n == want), "policies/{want} is missing: {names:?}");
    }
}

#[test]
fn every_policy_passes_its_tests() {
    let mut report = String::new();
    let (mut passed, mut failed) = (0, 0);
    for path in policy_files() {
        let policy = match load_file(&path) {
            Ok(p) => p,
            Err(e) => {
                failed += 1;
                report.push_str(&format!("{e}\n"));
                continue;
            }
        };
        if policy.tests().is_empty() {
            failed += 1;
            report.push_str(&format!("{}: carries no tests\n", path.display()));
        }
        for outcome in run_tests(&policy) {
            if outcome.passed {
                passed += 1;
            } else {
                failed += 1;
                report.push_str(&format!("{}: {outcome}\n", path.display()));
            }
        }
    }
    assert!(failed == 0, "{failed} policy test(s) failed, {passed} passed:\n{report}");
    assert!(passed > 0, "no policy tests ran");
    println!("{passed} policy tests passed");
}

fn sipborder(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipborder"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run sipborder");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipborder-policy-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write temp file");
    path
}

#[test]
fn cli_policy_test_prints_diff_and_fired_rules() {
    let vector = "../shared/vectors/seed002/d2_17_invite_cucm_delayed_offer.sip";
    let (code, out, err) = sipborder(&[
        "policy",
        "test",
        "--policy",
        "policies/cucm.yaml",
        "--message",
        vector,
        "--direction",
        "to-trunk",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("--- before\n+++ after\n@@ "), "{out}");
    assert!(out.contains("\n-Remote-Party-ID: <sip:192.168.80.100>;party=calling"), "{out}");
    assert!(out.contains("\n+P-Asserted-Identity: <sip:192.168.80.100>\n"), "{out}");
    assert!(out.contains("fired: rpid-to-pai, local-ring-tone, cisco-info-packages\n"), "{out}");

    let (code, out, _) = sipborder(&[
        "policy",
        "test",
        "--policy",
        "policies/cucm.yaml",
        "--message",
        vector,
        "--direction",
        "to-lan",
    ]);
    assert_eq!(code, 0);
    assert_eq!(out, "(the rules changed nothing)\nfired: (none)\n");
}

#[test]
fn cli_policy_test_reads_lf_messages_and_reports_rejects() {
    let msg = temp_file(
        "premium.sip",
        "INVITE sip:09001234567@pbx.example SIP/2.0\nVia: SIP/2.0/UDP 10.0.0.5;branch=z9hG4bK1\n\
         From: <sip:102@pbx.example>;tag=1\nTo: <sip:09001234567@pbx.example>\nCall-ID: c\n\
         CSeq: 1 INVITE\nMax-Forwards: 70\n",
    );
    let msg = msg.to_string_lossy().into_owned();
    let (code, out, err) =
        sipborder(&["policy", "test", "--policy", "policies/itsp-generic.yaml", "--message", &msg]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("fired: block-premium-rate\nrejected: 403 Premium Rate Numbers Blocked\n"),
        "{out}"
    );
}

#[test]
fn cli_policy_test_without_message_runs_the_files_tests() {
    let (code, out, err) = sipborder(&["policy", "test", "--policy", "policies/user-agent.yaml"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("5 passed, 0 failed\n"), "{out}");
}

#[test]
fn cli_bad_policy_exits_2_with_positions() {
    let bad = temp_file(
        "bad.yaml",
        "rules:\n  - name: hide\n    when: {ruri_user: \"(\"}\n    do:\n      - remove: {header: Via}\n",
    );
    let bad = bad.to_string_lossy().into_owned();
    let vector = "../shared/vectors/seed002/d2_01_invite_microsip.sip";
    let (code, _, err) = sipborder(&["policy", "test", "--policy", &bad, "--message", vector]);
    assert_eq!(code, 2);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(lines[0].starts_with(&format!("{bad}:3:23: rule \"hide\": bad regex \"(\"")), "{err}");
    assert!(
        lines[1]
            .starts_with(&format!("{bad}:5:26: rule \"hide\": remove: Via is owned by the B2BUA")),
        "{err}"
    );

    let (code, out, err) =
        sipborder(&["check", "--policy", &bad, "--policy", "policies/asterisk.yaml"]);
    assert_eq!(code, 2);
    assert!(out.contains("policies/asterisk.yaml: OK"), "{out}");
    assert!(err.contains(":5:26: rule \"hide\""), "{err}");

    let (code, _, err) =
        sipborder(&["policy", "test", "--policy", "policies/cucm.yaml", "--message", &bad]);
    assert_eq!(code, 2);
    assert!(err.contains("the message does not parse"), "{err}");
}

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

//! `docs/security.md` against the threats.md requirement IDs (issue 12 item 9), offline and fast.
//!
//! Fails when an ID of `tests/fixtures/threat-ids.txt` has no block (or two), a block names an
//! unknown ID or status, a `proven` block lists no test, a referenced test does not exist in its
//! file (or is `#[ignore]`d, so `make test` would not run it), or the counts line at the top is
//! wrong. GAP blocks do not fail the test; they are counted and printed. When the spec checkout
//! (`../shared/spec/threats.md`) is present, the fixture must list exactly its IDs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const STATUSES: [&str; 3] = ["proven", "n/a", "GAP"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
}

/// One `**ID** · status · rule` block and the test references in its body.
#[derive(Debug)]
struct Entry {
    status: String,
    refs: Vec<String>,
}

/// `**SL-1** · proven · …` ⇒ (`SL-1`, `proven`).
fn entry_head(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix("**")?;
    let (id, rest) = rest.split_once("** · ")?;
    let (status, _) = rest.split_once(" · ")?;
    let is_id = id.split_once('-').is_some_and(|(a, n)| {
        !a.is_empty() && a.chars().all(|c| c.is_ascii_uppercase()) && n.parse::<u32>().is_ok()
    });
    is_id.then(|| (id.to_string(), status.to_string()))
}

/// Backticked `path::…::fn` spans naming a test file.
fn refs_in(line: &str) -> Vec<String> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.contains("::")
                && ["tests/", "src/", "sidecar/"]
                    .iter()
                    .any(|p| s.starts_with(p))
        })
        .map(str::to_string)
        .collect()
}

/// Parses the document into blocks; panics on a duplicate ID.
fn parse(doc: &str) -> BTreeMap<String, Entry> {
    let mut out: BTreeMap<String, Entry> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some((id, status)) = entry_head(line) {
            let fresh = Entry {
                status,
                refs: Vec::new(),
            };
            assert!(
                out.insert(id.clone(), fresh).is_none(),
                "{id} has two blocks"
            );
            current = Some(id);
        } else if line.starts_with('#') {
            current = None;
        } else if let Some(e) = current.as_ref().and_then(|id| out.get_mut(id)) {
            e.refs.extend(refs_in(line));
        }
    }
    out
}

/// Whether `text` defines test `name` (a test attribute in the few lines before, no `#[ignore]`).
fn defines_rust_test(text: &str, name: &str) -> Result<(), String> {
    let lines: Vec<&str> = text.lines().collect();
    let needle = format!("fn {name}(");
    let at = lines
        .iter()
        .position(|l| l.contains(&needle))
        .ok_or_else(|| format!("no `fn {name}(`"))?;
    let before = &lines[at.saturating_sub(4)..at];
    if before.iter().any(|l| l.contains("#[ignore")) {
        return Err(format!("{name} is #[ignore]d: make test would not run it"));
    }
    let attr = |l: &&str| l.contains("#[test]") || l.contains("#[tokio::test");
    if before.iter().any(attr) {
        Ok(())
    } else {
        Err(format!("{name} is not a #[test]/#[tokio::test] function"))
    }
}

/// Checks one reference: the file exists and defines the test (and the named modules).
fn check_ref(r: &str) -> Result<(), String> {
    let parts: Vec<&str> = r.split("::").collect();
    let (file, name) = (parts[0], parts[parts.len() - 1]);
    let path = root().join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{file}: {e}"))?;
    if let Some(rest) = file.strip_prefix("tests/") {
        if rest.contains('/') {
            return Err(format!("{file} is not a test target (tests/<name>.rs)"));
        }
    }
    for m in &parts[1..parts.len() - 1] {
        if !text.contains(&format!("mod {m} ")) {
            return Err(format!("{file} has no `mod {m}`"));
        }
    }
    if file.ends_with("_test.go") {
        let sig = format!("func {name}(t *testing.T)");
        return text
            .contains(&sig)
            .then_some(())
            .ok_or(format!("no `{sig}`"));
    }
    if Path::new(file).extension().is_some_and(|e| e == "rs") {
        return defines_rust_test(&text, name);
    }
    Err(format!("{file}: not a .rs or _test.go file"))
}

/// `**Counts: 85 IDs — 57 proven, 8 n/a, 20 GAP.**` ⇒ [85, 57, 8, 20].
fn counts_line(doc: &str) -> Vec<usize> {
    let line = doc
        .lines()
        .find(|l| l.starts_with("**Counts:"))
        .expect("a `**Counts: …**` line at the top");
    line.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

fn fixture_ids() -> Vec<String> {
    read("tests/fixtures/threat-ids.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// IDs in the spec's requirement tables (`| ID | …` rows), when the spec checkout is present.
fn spec_ids() -> Option<Vec<String>> {
    let text = std::fs::read_to_string(root().join("../shared/spec/threats.md")).ok()?;
    let ids = text.lines().filter_map(|l| {
        let cell = l.strip_prefix("| ")?.split(' ').next()?;
        entry_head(&format!("**{cell}** · x · y")).map(|(id, _)| id)
    });
    Some(ids.collect())
}

#[test]
fn every_threat_id_is_mapped_to_existing_tests() {
    let ids = fixture_ids();
    assert!(ids.len() >= 80, "fixture lists {} IDs", ids.len());
    if let Some(spec) = spec_ids() {
        assert_eq!(
            ids, spec,
            "tests/fixtures/threat-ids.txt differs from threats.md"
        );
    } else {
        println!("note: ../shared/spec/threats.md absent; checking against the fixture only");
    }
    let doc = read("docs/security.md");
    let entries = parse(&doc);
    let mut problems = Vec::new();
    for id in &ids {
        if !entries.contains_key(id) {
            problems.push(format!("{id}: no block in docs/security.md"));
        }
    }
    for (id, e) in &entries {
        if !ids.contains(id) {
            problems.push(format!("{id}: not a threats.md ID"));
        }
        if !STATUSES.contains(&e.status.as_str()) {
            problems.push(format!("{id}: unknown status {:?}", e.status));
        }
        if e.status == "proven" && e.refs.is_empty() {
            problems.push(format!("{id}: proven but lists no test"));
        }
        for r in &e.refs {
            if let Err(why) = check_ref(r) {
                problems.push(format!("{id}: `{r}`: {why}"));
            }
        }
    }
    let count = |s: &str| entries.values().filter(|e| e.status == s).count();
    let actual = vec![entries.len(), count("proven"), count("n/a"), count("GAP")];
    if counts_line(&doc) != actual {
        problems.push(format!(
            "counts line says {:?}, the blocks give {actual:?}",
            counts_line(&doc)
        ));
    }
    let gaps: Vec<&String> = entries
        .iter()
        .filter(|(_, e)| e.status == "GAP")
        .map(|(id, _)| id)
        .collect();
    println!(
        "threats.md map: {} IDs, {} proven, {} n/a, {} GAP",
        actual[0], actual[1], actual[2], actual[3]
    );
    println!("GAPs: {gaps:?}");
    assert!(
        problems.is_empty(),
        "docs/security.md:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_catches_what_it_claims_to() {
    let doc = "## x\n**AB-1** · proven · r\n- `tests/security_map.rs::no_such_test`: x\n\
               **AB-2** · GAP · r\n- Missing: all.\n";
    let e = parse(doc);
    assert_eq!(
        (e["AB-1"].status.as_str(), e["AB-2"].status.as_str()),
        ("proven", "GAP")
    );
    assert!(
        check_ref(&e["AB-1"].refs[0]).is_err(),
        "a dangling reference is caught"
    );
    assert!(check_ref("tests/security_map.rs::the_checker_catches_what_it_claims_to").is_ok());
    assert!(
        check_ref("tests/common/mod.rs::bounded").is_err(),
        "helpers are no test target"
    );
    assert!(
        check_ref("tests/security_map.rs::parse").is_err(),
        "a helper fn is not a test"
    );
    assert!(
        check_ref("src/auth/origin.rs::nomod::origins").is_err(),
        "modules are checked"
    );
    assert_eq!(
        counts_line("**Counts: 3 IDs — 1 proven, 0 n/a, 2 GAP.**"),
        [3, 1, 0, 2]
    );
    assert_eq!(
        entry_head("**SSH-3** · n/a · x"),
        Some(("SSH-3".into(), "n/a".into()))
    );
    assert_eq!(entry_head("**Counts: 1 IDs — …**"), None);
}

//! ARCHITECTURE.md says, for every module of the server, which other modules it may use. This
//! test reads that table and the sources, and fails when a module uses one it may not, when
//! the table itself has a cycle, or when two of the app's pages import each other: the
//! document stays true and the layers stay layers.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `server` modules table of ARCHITECTURE.md: module → modules it may use.
fn allowed() -> BTreeMap<String, BTreeSet<String>> {
    let doc = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let section = doc.split("## `server` modules").nth(1).expect("a `server` modules section").split("\n## ").next().unwrap();
    let mut out = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let uses = cells.last().filter(|c| !c.is_empty()).or(cells.get(cells.len() - 2)).unwrap();
        let deps = uses.split(',').map(|d| d.trim().trim_matches('`').to_string()).filter(|d| !d.is_empty() && d != "—").collect();
        out.insert(name, deps);
    }
    assert!(!out.is_empty(), "no module rows found in ARCHITECTURE.md");
    out
}

/// Every `.rs` file of a module (`src/name.rs` or `src/name/**`).
fn files(module: &Path) -> Vec<PathBuf> {
    if module.is_dir() {
        std::fs::read_dir(module).unwrap().flatten().flat_map(|e| files(&e.path())).collect()
    } else if module.extension().is_some_and(|e| e == "rs") {
        vec![module.to_path_buf()]
    } else {
        vec![]
    }
}

/// The first path segment of every `crate::…` path in the source, braces included
/// (`use crate::{a::b, c}` names `a` and `c`).
fn crate_uses(source: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(prefix) {
        rest = &rest[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item, mut end) = (1, String::new(), group.len());
            let mut items = Vec::new();
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 1 => {
                        end = i;
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 1 => items.push(std::mem::take(&mut item)),
                    _ if depth == 1 => item.push(c),
                    _ => {}
                }
            }
            items.push(item);
            out.extend(items.iter().filter_map(|i| head(i.trim())));
            rest = &group[end..];
        } else if let Some(h) = head(rest) {
            out.insert(h);
        }
    }
    out
}

fn head(path: &str) -> Option<String> {
    let name: String = path.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    (!name.is_empty() && name != "self").then_some(name)
}

#[test]
fn every_server_module_uses_only_what_architecture_md_allows() {
    let allowed = allowed();
    let src = repo().join("server/src");
    let mut modules = BTreeSet::new();
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if matches!(name.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        modules.insert(name.clone());
        let allowed_here = allowed.get(&name).unwrap_or_else(|| panic!("server module `{name}` is not in ARCHITECTURE.md's table"));
        for file in files(&path) {
            let source = std::fs::read_to_string(&file).unwrap();
            for used in crate_uses(&source, "crate::") {
                assert!(used == name || allowed_here.contains(&used), "{} uses `{used}`, which ARCHITECTURE.md does not allow `{name}` to use", file.display());
            }
        }
    }
    for documented in allowed.keys() {
        assert!(modules.contains(documented), "ARCHITECTURE.md lists `{documented}`, which is not a server module");
    }
}

#[test]
fn the_allowed_uses_have_no_cycle() {
    let allowed = allowed();
    // Depth-first search for a path back to the start.
    fn reaches(from: &str, to: &str, g: &BTreeMap<String, BTreeSet<String>>, seen: &mut BTreeSet<String>) -> bool {
        g.get(from).is_some_and(|next| next.iter().any(|n| n == to || (seen.insert(n.clone()) && reaches(n, to, g, seen))))
    }
    for m in allowed.keys() {
        assert!(!reaches(m, m, &allowed, &mut BTreeSet::new()), "`{m}` can reach itself through the allowed uses");
    }
}

#[test]
fn no_two_pages_import_each_other() {
    let pages = repo().join("app/src/pages");
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files(&pages) {
        let name = file.file_stem().unwrap().to_string_lossy().to_string();
        let source = std::fs::read_to_string(&file).unwrap();
        let mut found = crate_uses(&source, "crate::pages::");
        found.extend(crate_uses(&source, "super::"));
        found.remove(&name);
        uses.insert(name, found);
    }
    for (a, deps) in &uses {
        for b in deps {
            assert!(!uses.get(b).is_some_and(|d| d.contains(a)), "pages `{a}` and `{b}` import each other");
        }
    }
}

#[test]
fn the_scanner_reads_grouped_and_plain_paths() {
    let src = "use crate::{a::b, c, d::{e, f}};\nlet x = crate::g::h();\nuse crate::self_test;";
    assert_eq!(crate_uses(src, "crate::"), ["a", "c", "d", "g", "self_test"].iter().map(|s| s.to_string()).collect());
}

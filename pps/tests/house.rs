//! The shape of the crate: its modules import each other without a circle, so each can
//! be read (and changed) knowing only what it stands on. The web wing once closed one
//! (app → service → ui → app); this keeps it from coming back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module of `pps/src` (the HTTP wing as `http`, `http::server`, `http::ui`) with
/// the modules its code names through `crate::` or `super::`. Unit tests are left out.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    // A module as a node: top-level modules, and the HTTP wing's two halves.
    let node = |path: &[&str]| -> String {
        match path {
            ["http", sub, ..] if *sub == "server" || *sub == "ui" => format!("http::{sub}"),
            [first, ..] => (*first).to_owned(),
            [] => String::new(),
        }
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&root).unwrap().with_extension("");
        let parts: Vec<&str> = rel
            .iter()
            .map(|c| c.to_str().unwrap())
            .filter(|c| *c != "mod")
            .collect();
        if parts == ["lib"] {
            continue;
        }
        let me = node(&parts);
        let text = std::fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        let deps = graph.entry(me.clone()).or_default();
        for line in code.lines().map(|l| l.split("//").next().unwrap()) {
            for (prefix, base) in [("crate::", &[][..]), ("super::", &parts[..parts.len() - 1])] {
                for (i, _) in line.match_indices(prefix) {
                    let rest = &line[i + prefix.len()..];
                    // `crate::{a::B, c}` names each of its items.
                    let items: Vec<&str> = match rest.strip_prefix('{') {
                        Some(group) => group.split('}').next().unwrap().split(',').collect(),
                        None => vec![rest],
                    };
                    for item in items {
                        let named: Vec<&str> = item
                            .trim()
                            .split(|c: char| !(c.is_ascii_lowercase() || c == '_' || c == ':'))
                            .next()
                            .unwrap()
                            .split("::")
                            .filter(|s| !s.is_empty())
                            .collect();
                        let full: Vec<&str> = base.iter().copied().chain(named).collect();
                        let to = node(&full);
                        if !to.is_empty() && to != me {
                            deps.insert(to);
                        }
                    }
                }
            }
        }
    }
    // Only modules of this crate (not `crate::App`, which is lower case nowhere).
    let known: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| known.contains(d));
    }
    graph
}

/// A circle through `from`, if there is one.
fn circle_through(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    let mut stack = vec![(from.to_owned(), vec![from.to_owned()])];
    let mut seen = BTreeSet::new();
    while let Some((at, path)) = stack.pop() {
        for next in graph.get(&at).into_iter().flatten() {
            if next == from {
                let mut c = path.clone();
                c.push(from.to_owned());
                return Some(c);
            }
            if seen.insert(next.clone()) {
                let mut p = path.clone();
                p.push(next.clone());
                stack.push((next.clone(), p));
            }
        }
    }
    None
}

#[test]
fn the_modules_import_each_other_without_a_circle() {
    let graph = imports();
    assert!(graph.contains_key("http::ui") && graph.contains_key("service"));
    // The service starts the HTTP wing through its handle and names no router.
    assert!(graph["service"].contains("http"), "{graph:?}");
    assert!(
        !graph["service"].contains("http::server") && !graph["service"].contains("http::ui"),
        "the service names the wing's routers: {:?}",
        graph["service"]
    );
    for m in graph.keys() {
        if let Some(c) = circle_through(&graph, m) {
            panic!("a circle of imports: {}", c.join(" → "));
        }
    }
}

#[test]
fn the_finder_sees_a_circle_when_there_is_one() {
    let mut graph = imports();
    graph.get_mut("app").unwrap().insert("http::ui".to_owned());
    assert!(circle_through(&graph, "app").is_some());
}

/// The UI's pages are maud templates, which escape every value: no page hands raw
/// text through (`PreEscaped`) or glues markup into a string by hand.
#[test]
fn the_ui_builds_html_only_from_templates() {
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/http/ui");
    let mut files = vec![ui.with_extension("rs")];
    for e in std::fs::read_dir(&ui).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") {
            files.push(p);
        }
    }
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap();
            for glued in [
                "PreEscaped(",
                "format!(\"<",
                "format!(r#\"<",
                "push_str(\"<",
            ] {
                assert!(!code.contains(glued), "{}:{}: {line}", f.display(), n + 1);
            }
        }
    }
}

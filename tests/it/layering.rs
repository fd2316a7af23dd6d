//! No import cycles between the modules of src/: every `crate::X`, `crate::{X, …}` and (inside
//! a directory module such as ws/) `super::X` path is an edge from the file's module to X; the
//! graph of top-level modules, and the graph of each directory module's children, must be
//! acyclic. Test modules count too: a cycle through a test is still a cycle to read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Edges between modules: `from -> {to}`.
type Graph = BTreeMap<String, BTreeSet<String>>;

/// The source without comments, string literals and char literals (a path inside one is no
/// import).
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1).copied()) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            ('r', Some('#' | '"')) if i == 0 || !is_ident(chars[i - 1]) => {
                let mut j = i + 1;
                let mut hashes = 0;
                while chars.get(j) == Some(&'#') {
                    hashes += 1;
                    j += 1;
                }
                if chars.get(j) != Some(&'"') {
                    out.push(chars[i]);
                    i += 1;
                    continue;
                }
                j += 1;
                let closing: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                while j < chars.len()
                    && !chars[j..].iter().collect::<String>().starts_with(&closing)
                {
                    j += 1;
                }
                i = j + closing.len();
                out.push_str("\"\"");
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a without a closing quote).
            ('\'', Some(c)) if c == '\\' || chars.get(i + 2) == Some(&'\'') => {
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("' '");
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The first segment of every path that starts with `prefix::` (e.g. `crate`), including each
/// item of a `prefix::{a::B, c}` group.
fn targets(code: &str, prefix: &str) -> BTreeSet<String> {
    let needle = format!("{prefix}::");
    let mut found = BTreeSet::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(&needle) {
        let start = from + at;
        from = start + needle.len();
        if code[..start].chars().next_back().is_some_and(is_ident) || code[..start].ends_with("::")
        {
            continue;
        }
        let rest = code[from..].trim_start();
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && is_ident(c) && depth == 0 => {
                        let name: String =
                            group[i..].chars().take_while(|&c| is_ident(c)).collect();
                        found.insert(name);
                        item_start = false;
                    }
                    c if !c.is_whitespace() => item_start = false,
                    _ => {}
                }
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found.remove("self");
    found.remove("super");
    found
}

/// A cycle in `graph`, as its modules in order with the first repeated at the end.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'g>(
        graph: &'g Graph,
        node: &'g str,
        marks: &mut BTreeMap<&'g str, Mark>,
        path: &mut Vec<&'g str>,
    ) -> Option<Vec<String>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle: Vec<String> = path[start..].iter().map(|n| n.to_string()).collect();
                cycle.push(node.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Open);
        path.push(node);
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(graph, next, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut marks, &mut Vec::new()))
}

/// The module graphs of a source tree given as (path relative to src/, source) pairs: the
/// top-level graph under the key "crate", and one per directory module under its name.
fn graphs(files: &[(String, String)]) -> BTreeMap<String, Graph> {
    let top: BTreeSet<String> = files
        .iter()
        .filter_map(|(path, _)| top_module(path))
        .collect();
    let mut graphs: BTreeMap<String, Graph> = BTreeMap::new();
    for (path, source) in files {
        let Some(module) = top_module(path) else {
            continue;
        };
        let code = code_only(source);
        let crate_targets = targets(&code, "crate");
        let edges: BTreeSet<String> = crate_targets
            .iter()
            .filter(|to| top.contains(*to) && **to != module)
            .cloned()
            .collect();
        graphs
            .entry("crate".into())
            .or_default()
            .entry(module.clone())
            .or_default()
            .extend(edges);
        // Within a directory module: edges between its children.
        let Some((dir, file)) = path.split_once('/') else {
            continue;
        };
        let child = file.trim_end_matches(".rs");
        if child == "mod" || file.contains('/') {
            continue;
        }
        let siblings: BTreeSet<String> = files
            .iter()
            .filter_map(|(p, _)| p.strip_prefix(&format!("{dir}/")))
            .filter(|f| !f.contains('/') && *f != "mod.rs" && f.ends_with(".rs"))
            .map(|f| f.trim_end_matches(".rs").to_string())
            .collect();
        let mut inner = targets(&code, "super");
        inner.extend(targets(&code, &format!("crate::{dir}")));
        graphs
            .entry(dir.to_string())
            .or_default()
            .entry(child.to_string())
            .or_default()
            .extend(
                inner
                    .into_iter()
                    .filter(|to| siblings.contains(to) && to != child),
            );
    }
    graphs
}

/// The top-level module a file belongs to; `None` for the crate roots.
fn top_module(path: &str) -> Option<String> {
    if path == "lib.rs" || path == "main.rs" {
        return None;
    }
    let first = path.split('/').next()?;
    Some(first.trim_end_matches(".rs").to_string())
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            sources(&path, root, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let relative = path.strip_prefix(root).expect("under src/");
            let source = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            out.push((relative.to_string_lossy().replace('\\', "/"), source));
        }
    }
}

/// Every .rs file under src/, as (path relative to src/, source).
fn src_files() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &src, &mut files);
    files
}

#[test]
fn the_modules_of_src_import_each_other_without_cycles() {
    let files = src_files();
    let graphs = graphs(&files);
    assert!(
        graphs["crate"].len() > 10,
        "too few modules found: {graphs:?}"
    );
    let cycles: Vec<String> = graphs
        .iter()
        .filter_map(|(scope, graph)| {
            find_cycle(graph).map(|cycle| format!("{scope}: {}", cycle.join(" -> ")))
        })
        .collect();
    assert!(
        cycles.is_empty(),
        "import cycles in src/:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_core_modules_know_nothing_of_axum() {
    let files = src_files();
    let core = [
        "config.rs",
        "heartbeat.rs",
        "hub.rs",
        "live.rs",
        "metrics.rs",
        "tick.rs",
        "ws/close.rs",
        "ws/protocol.rs",
    ];
    for name in core {
        assert!(files.iter().any(|(path, _)| path == name), "no src/{name}");
    }
    let offenders: Vec<&str> = files
        .iter()
        .filter(|(path, _)| core.contains(&path.as_str()) || path.starts_with("store/"))
        .filter(|(_, source)| code_only(source).contains("axum"))
        .map(|(path, _)| path.as_str())
        .collect();
    assert!(offenders.is_empty(), "axum types in {offenders:?}");
}

#[test]
fn the_checker_finds_cycles_through_every_form_of_path() {
    let file = |path: &str, source: &str| (path.to_string(), source.to_string());
    let cyclic = [
        file("a.rs", "use crate::{b::B, /* crate::z */ other};"),
        file("b.rs", "fn f() { crate::c::g() }"),
        file("c.rs", "// use crate::z;\nuse crate::a;"),
        file("other.rs", "const S: &str = \"crate::a\";"),
        file("d/mod.rs", "mod x; mod y;"),
        file("d/x.rs", "use super::y::Y;"),
        file("d/y.rs", "use crate::d::{x};"),
    ];
    let found = graphs(&cyclic);
    assert_eq!(
        find_cycle(&found["crate"]),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert_eq!(
        find_cycle(&found["d"]),
        Some(vec!["x".into(), "y".into(), "x".into()])
    );
    assert!(found["crate"]["other"].is_empty(), "{found:?}");
    let acyclic = [
        file(
            "a.rs",
            "use crate::b;\n#[cfg(test)] mod tests { use super::*; }",
        ),
        file("b.rs", "let c = 'a'; fn f<'a>(x: &'a str) {}"),
    ];
    assert_eq!(find_cycle(&graphs(&acyclic)["crate"]), None);
}

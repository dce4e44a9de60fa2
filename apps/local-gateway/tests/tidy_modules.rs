//! The local gateway's modules form no import cycle, and only the modules that handle requests
//! may import `gateway` (the state every request handler shares). Everything else (the inspector,
//! the events, the invoker, the socket registry, the limits...) is a leaf the request handlers are
//! built from: it takes what it needs as arguments or as an axum substate, never the whole
//! gateway.
//!
//! The graph is read from the sources: every `use` of a `crate::`, `super::`, `self::` or child
//! module path, and every such path written inline, in production code (each file up to its first
//! `#[cfg(test)]`). A `crate::Name` that `lib.rs` re-exports counts as an import of the module it
//! comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules that handle requests, and so may import `gateway`. Any other module is a leaf.
const MAY_IMPORT_GATEWAY: &[&str] = &[
    "crate",
    "gateway",
    "handshake",
    "socket",
    "management",
    "publish_route",
    "server",
];

/// The crate root's name in the graph.
const ROOT: &str = "crate";

struct Module {
    name: String,
    /// The production code, comments and string contents removed.
    code: String,
}

#[test]
fn the_modules_form_no_import_cycle() {
    let graph = Graph::read(&source_dir());

    if let Some(cycle) = graph.cycle() {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn no_leaf_module_depends_on_the_gateway_even_through_another_module() {
    let graph = Graph::read(&source_dir());

    let mut offenders = Vec::new();
    for module in graph.edges.keys() {
        if MAY_IMPORT_GATEWAY.contains(&module.as_str()) {
            continue;
        }
        if let Some(path) = graph.path(module, "gateway") {
            offenders.push(path.join(" -> "));
        }
    }

    assert!(
        offenders.is_empty(),
        "leaf modules that reach `gateway`:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_reader_finds_the_imports_it_is_meant_to_find() {
    let modules = vec![
        module(
            "crate",
            "mod a; mod b; mod z; pub use a::other::Beta; pub use z::Alpha;",
        ),
        module(
            "a",
            "use crate::{b::{self, Thing}, Beta}; fn f() { crate::c::g(); b::inner::h(); }",
        ),
        module("b::inner", ""),
        module(
            "b",
            r#"fn f() { let s = "crate::a::x"; /* crate::a */ super::Alpha; }"#,
        ),
        module("c", "pub(crate) use d::X; fn g() { d::y(); e::z(); }"),
        module("c::d", "use super::super::b;"),
        module("z", ""),
    ];
    let graph = Graph::from_modules(&modules);

    let edges = |name: &str| graph.edges[name].iter().cloned().collect::<Vec<_>>();
    assert_eq!(
        edges("a"),
        ["b", "b::inner", "c"],
        "`Beta` is re-exported from `a` itself; `b::inner` through the `b` it imports"
    );
    assert_eq!(edges("b"), ["z"], "strings and comments are not imports");
    assert_eq!(edges("c"), ["c::d"], "`e` is not a module of the crate");
    assert_eq!(edges("c::d"), ["b"]);
    assert_eq!(graph.cycle(), None);
    assert_eq!(graph.path("c", "b").unwrap(), ["c", "c::d", "b"]);
}

#[test]
fn a_cycle_is_found_and_named() {
    let modules = vec![
        module("crate", "mod a; mod b;"),
        module("a", "use crate::b::B;"),
        module("b", "fn f() { crate::a::g(); }"),
    ];

    let cycle = Graph::from_modules(&modules).cycle().expect("a cycle");

    assert_eq!(cycle, ["a", "b", "a"]);
}

fn module(name: &str, code: &str) -> Module {
    Module {
        name: name.to_owned(),
        code: strip(code),
    }
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

struct Graph {
    /// Each module and the modules it imports (itself excluded).
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn read(dir: &Path) -> Self {
        let mut modules = Vec::new();
        read_modules(dir, dir, &mut modules);
        assert!(
            modules.len() > 10,
            "the sources were found in {}",
            dir.display()
        );
        Self::from_modules(&modules)
    }

    fn from_modules(modules: &[Module]) -> Self {
        let names: BTreeSet<&str> = modules.iter().map(|m| m.name.as_str()).collect();
        let root = modules.iter().find(|m| m.name == ROOT);
        let reexports = root.map(|root| reexports(root, &names)).unwrap_or_default();
        let mut edges = BTreeMap::new();
        for module in modules {
            let mut imports = BTreeSet::new();
            for path in paths(&module.code, &module.name, &names) {
                let target = resolve(&path, &names, &reexports);
                if target != module.name {
                    imports.insert(target);
                }
            }
            edges.insert(module.name.clone(), imports);
        }
        Self { edges }
    }

    /// One cycle, as the modules along it (the first repeated at the end), if there is any.
    fn cycle(&self) -> Option<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            Open,
            Done,
        }
        fn visit(
            graph: &Graph,
            node: &str,
            marks: &mut BTreeMap<String, Mark>,
            stack: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            marks.insert(node.to_owned(), Mark::Open);
            stack.push(node.to_owned());
            for next in graph.edges.get(node).into_iter().flatten() {
                match marks.get(next) {
                    Some(Mark::Open) => {
                        let start = stack.iter().position(|n| n == next).unwrap_or(0);
                        let mut cycle = stack[start..].to_vec();
                        cycle.push(next.clone());
                        return Some(cycle);
                    }
                    Some(Mark::Done) => {}
                    None => {
                        if let Some(cycle) = visit(graph, next, marks, stack) {
                            return Some(cycle);
                        }
                    }
                }
            }
            stack.pop();
            marks.insert(node.to_owned(), Mark::Done);
            None
        }
        let mut marks = BTreeMap::new();
        for node in self.edges.keys() {
            if !marks.contains_key(node)
                && let Some(cycle) = visit(self, node, &mut marks, &mut Vec::new())
            {
                return Some(cycle);
            }
        }
        None
    }

    /// The shortest chain of imports from `from` to `to`, if `from` depends on `to` at all.
    fn path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        let mut came_from: BTreeMap<String, String> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.to_owned()]);
        while let Some(node) = queue.pop_front() {
            if node == to {
                let mut path = vec![node.clone()];
                let mut at = node;
                while let Some(previous) = came_from.get(&at) {
                    path.push(previous.clone());
                    at = previous.clone();
                }
                path.reverse();
                return Some(path);
            }
            for next in self.edges.get(&node).into_iter().flatten() {
                if next != from && !came_from.contains_key(next) {
                    came_from.insert(next.clone(), node.clone());
                    queue.push_back(next.clone());
                }
            }
        }
        None
    }
}

/// Every `.rs` file under `dir` but `main.rs` (the binary, another crate), as a module.
fn read_modules(root: &Path, dir: &Path, out: &mut Vec<Module>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            read_modules(root, &path, out);
            continue;
        }
        if path.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under the root");
        let mut segments: Vec<String> = relative
            .iter()
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_owned())
            .collect();
        if segments == ["main"] {
            continue;
        }
        if segments.last().is_some_and(|s| s == "mod" || s == "lib") {
            segments.pop();
        }
        let name = if segments.is_empty() {
            ROOT.to_owned()
        } else {
            segments.join("::")
        };
        let source = std::fs::read_to_string(&path).expect("readable source");
        let production = source.split("#[cfg(test)]").next().unwrap_or_default();
        out.push(Module {
            name,
            code: strip(production),
        });
    }
}

/// `code` without comments, and with every string and character literal emptied, so neither a
/// doc link nor a URL in a string reads as an import.
fn strip(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
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
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && !is_ident(chars.get(i.wrapping_sub(1)))
        {
            // A raw string: r"...", r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && (chars.get(i + 2) == Some(&'\'') || next == Some('\\')) {
            // A character literal ('"', '\n', '\''); a lifetime has no closing quote.
            i += 1;
            if chars.get(i) == Some(&'\\') {
                i += 1;
            }
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The names the crate root re-exports (`pub use a::{B, c::D}`), each with the path it names.
fn reexports(root: &Module, modules: &BTreeSet<&str>) -> BTreeMap<String, Vec<String>> {
    let mut names = BTreeMap::new();
    for statement in use_statements(&root.code) {
        for path in expand(&statement) {
            let absolute = absolute(&path, ROOT, modules);
            if let (Some(absolute), Some(last)) = (absolute, path.last())
                && last != "self"
                && last != "*"
            {
                names.insert(last.clone(), absolute);
            }
        }
    }
    names
}

/// Every path in `code` that may name a module of the crate, made absolute (without `crate`).
/// A module brought in by a `use` (`use crate::events::{self, ...}`) is followed into when a
/// path starts with its name (`events::message`).
fn paths(code: &str, module: &str, modules: &BTreeSet<&str>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut aliases: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for statement in use_statements(code) {
        for path in expand(&statement) {
            let Some(mut absolute) = absolute(&path, module, modules) else {
                continue;
            };
            if absolute.last().is_some_and(|last| last == "self") {
                absolute.pop();
            }
            if let Some(name) = absolute.last()
                && modules.contains(absolute.join("::").as_str())
            {
                aliases.insert(name.clone(), absolute.clone());
            }
            found.push(absolute);
        }
    }
    for path in inline_paths(code) {
        match aliases.get(&path[0]) {
            Some(module) => found.push(module.iter().chain(&path[1..]).cloned().collect()),
            None => found.extend(absolute(&path, module, modules)),
        }
    }
    found
}

/// The body of every `use` item (`a::{b, c::d}`), `use` and `;` left out.
fn use_statements(code: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(found) = code[at..].find("use ") {
        let start = at + found;
        let before = start.checked_sub(1).map(|i| bytes[i] as char);
        at = start + 4;
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        let Some(end) = code[at..].find(';') else {
            break;
        };
        statements.push(code[at..at + end].split_whitespace().collect());
        at += end;
    }
    statements
}

/// `a::{b, c::{d, e}}` as `[a, b]`, `[a, c, d]`, `[a, c, e]`; `x as y` as `x`.
fn expand(statement: &str) -> Vec<Vec<String>> {
    fn split_top(list: &str) -> Vec<&str> {
        let mut parts = Vec::new();
        let (mut depth, mut start) = (0, 0);
        for (i, c) in list.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&list[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&list[start..]);
        parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
    }
    fn go(prefix: &[String], rest: &str, out: &mut Vec<Vec<String>>) {
        let rest = rest.trim();
        let rest = rest.split(" as ").next().unwrap_or(rest);
        if let Some(open) = rest.find('{') {
            let head = rest[..open].trim_end_matches("::");
            let inner = rest[open + 1..].trim_end().trim_end_matches('}');
            let mut prefix = prefix.to_vec();
            prefix.extend(
                head.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            for part in split_top(inner) {
                go(&prefix, part, out);
            }
        } else {
            let mut path = prefix.to_vec();
            path.extend(
                rest.split("::")
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned),
            );
            out.push(path);
        }
    }
    let mut out = Vec::new();
    go(&[], statement, &mut out);
    out
}

/// Every `x::y::z` path written in the code (one segment or more before a `::`), outside braces.
fn inline_paths(code: &str) -> Vec<Vec<String>> {
    let chars: Vec<char> = code.chars().collect();
    let mut paths = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts_path = is_ident(chars.get(i))
            && !is_ident(chars.get(i.wrapping_sub(1)))
            && !(i >= 1 && chars[i - 1] == ':');
        if !starts_path {
            i += 1;
            continue;
        }
        let mut segments = Vec::new();
        let mut j = i;
        loop {
            let start = j;
            while is_ident(chars.get(j)) {
                j += 1;
            }
            segments.push(chars[start..j].iter().collect::<String>());
            if chars.get(j) == Some(&':')
                && chars.get(j + 1) == Some(&':')
                && is_ident(chars.get(j + 2))
            {
                j += 2;
            } else {
                break;
            }
        }
        if segments.len() > 1 {
            paths.push(segments);
        }
        i = j.max(i + 1);
    }
    paths
}

/// `path`, written in `module`, as an absolute path from the crate root, when it starts in the
/// crate (`crate`, `super`, `self`, or a child module of `module`).
fn absolute(path: &[String], module: &str, modules: &BTreeSet<&str>) -> Option<Vec<String>> {
    let mut here: Vec<String> = if module == ROOT {
        Vec::new()
    } else {
        module.split("::").map(str::to_owned).collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            here.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                here.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let mut child = here.clone();
            child.push(first.to_owned());
            if !modules.contains(child.join("::").as_str()) {
                return None;
            }
        }
        None => return None,
    }
    here.extend(rest.iter().cloned());
    Some(here)
}

/// The module an absolute path lands in: the longest prefix that is a module, or, for a name the
/// crate root re-exports, the module that name comes from.
fn resolve(
    path: &[String],
    modules: &BTreeSet<&str>,
    reexports: &BTreeMap<String, Vec<String>>,
) -> String {
    let longest = (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate.as_str()));
    if let Some(module) = longest {
        return module;
    }
    match path.first().and_then(|name| reexports.get(name)) {
        Some(source) if source.as_slice() != &path[..1] => {
            resolve(source, modules, &BTreeMap::new())
        }
        _ => ROOT.to_owned(),
    }
}

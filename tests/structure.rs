//! The layout of `src/` (see the map in `src/lib.rs`) held against the code:
//! each module names only its own layer and the layers below it, and no two
//! modules name each other, however far round.
//!
//! It reads every `crate::` and `super::` path in the code (comments and
//! string literals left out), so a dependency hidden in an inline path
//! counts as much as one in a `use` block.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Lowest first: a module may name its own layer and those before it.
const LAYERS: &[&[&str]] = &[
    &["core"],
    &["store"],
    &["socket"],
    &["hub"],
    &["bus"],
    &["writers"],
    &["sessions"],
    &["http"],
    &["startup", "shutdown", "cli", "logging", "lib", "main"],
];

fn layer_of(top: &str) -> usize {
    LAYERS
        .iter()
        .position(|names| names.contains(&top))
        .unwrap_or_else(|| panic!("src/{top} is in no layer; add it to LAYERS and to src/lib.rs"))
}

/// A file's module path: `src/hub/room/join.rs` → `hub::room::join`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The unit a module belongs to for the circle check: a layer's own root
/// (`hub`) or one of its modules (`hub::room`), whatever lies deeper.
fn unit(src: &Path, path: &[String]) -> String {
    if path.len() >= 2 {
        let dir = src.join(&path[0]).join(&path[1]);
        let file = src.join(&path[0]).join(format!("{}.rs", path[1]));
        if dir.is_dir() || file.is_file() {
            return format!("{}::{}", path[0], path[1]);
        }
    }
    path.first().cloned().unwrap_or_default()
}

/// The code without comments and string literals.
fn code_only(text: &str) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let next = bytes.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < bytes.len() && bytes[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i + 1 < bytes.len() && !(bytes[i] == '*' && bytes[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && !prev_ident(&bytes, i) {
            // r"..." or r#"..."#
            let mut j = i + 1;
            let mut hashes = 0;
            while bytes.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if bytes.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= bytes.len() {
                    break;
                }
                if bytes[j] == '"' && (0..hashes).all(|k| bytes.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < bytes.len() && bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next.is_some() && bytes.get(i + 2) == Some(&'\'') {
            // a char literal such as '"'
            out.push_str("' '");
            i += 3;
        } else if c == '\'' && next == Some('\\') {
            i += 2;
            while i < bytes.len() && bytes[i] != '\'' {
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

fn prev_ident(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Every path a file names, from `start` (`crate::` or `super::`), with
/// `use` groups (`crate::{a::b, c::{d, e}}`) spelled out.
fn paths_after(code: &str, start: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(at) = code[from..].find(start) {
        let begin = from + at;
        from = begin + start.len();
        if begin > 0 {
            let before = code[..begin].chars().next_back().unwrap();
            if before.is_alphanumeric() || before == '_' || before == ':' {
                continue;
            }
        }
        let rest = &code[from..];
        expand(rest, Vec::new(), &mut out);
    }
    out
}

/// Reads one use tree at the start of `text`, prefixed by `prefix`.
fn expand(text: &str, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    let mut i = 0;
    let chars: Vec<char> = text.chars().collect();
    loop {
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if chars.get(i) == Some(&'{') {
            i += 1;
            loop {
                while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    i += 1;
                }
                if chars.get(i) == Some(&'}') || i >= chars.len() {
                    return i + 1;
                }
                let rest: String = chars[i..].iter().collect();
                i += expand(&rest, path.clone(), out);
            }
        }
        let mut word = String::new();
        while let Some(c) = chars.get(i).filter(|c| c.is_alphanumeric() || **c == '_') {
            word.push(*c);
            i += 1;
        }
        if word.is_empty() {
            // `*`, or something this reader does not know: one character on.
            out.push(path);
            return i + 1;
        }
        if word != "self" {
            path.push(word);
            if chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':') {
                i += 2;
                continue;
            }
        }
        out.push(path);
        return i + skip_alias(&chars[i..]);
    }
}

/// The length of an ` as name` that follows a path, if one does.
fn skip_alias(chars: &[char]) -> usize {
    let mut i = 0;
    while chars.get(i).is_some_and(|c| c.is_whitespace()) {
        i += 1;
    }
    if chars.get(i) == Some(&'a')
        && chars.get(i + 1) == Some(&'s')
        && chars.get(i + 2).is_some_and(|c| c.is_whitespace())
    {
        i += 3;
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        while chars
            .get(i)
            .is_some_and(|c| c.is_alphanumeric() || *c == '_')
        {
            i += 1;
        }
        return i;
    }
    0
}

/// Keeps the leading lower-case segments (modules), not the item names.
fn modules_of(path: &[String]) -> Vec<String> {
    path.iter()
        .take_while(|s| {
            s.chars()
                .next()
                .is_some_and(|c| c.is_lowercase() || c == '_')
        })
        .cloned()
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Who names whom: unit → (unit it names → an example file).
fn dependencies(src: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for file in files {
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let here = module_path(src, &file);
        let from = unit(src, &here);
        let mut named: Vec<Vec<String>> = paths_after(&code, "crate::")
            .into_iter()
            .map(|p| modules_of(&p))
            .collect();
        for p in paths_after(&code, "super::") {
            // `super` of `a::b` (a file b.rs, or b/mod.rs) is `a`.
            let mut base = here.clone();
            base.pop();
            let mut rest = modules_of(&p);
            while rest.first().is_some_and(|s| s == "super") {
                rest.remove(0);
                base.pop();
            }
            base.extend(rest);
            named.push(base);
        }
        for target in named.into_iter().filter(|p| !p.is_empty()) {
            let to = unit(src, &target);
            if to.is_empty() {
                continue;
            }
            let rel = file.strip_prefix(src).unwrap().display().to_string();
            graph
                .entry(from.clone())
                .or_default()
                .entry(to)
                .or_insert(rel);
        }
    }
    graph
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_module_names_only_its_own_layer_and_those_below() {
    let src = src_dir();
    let mut wrong = Vec::new();
    for (from, targets) in dependencies(&src) {
        let from_layer = layer_of(from.split("::").next().unwrap());
        for (to, file) in targets {
            let to_layer = layer_of(to.split("::").next().unwrap());
            if to_layer > from_layer {
                wrong.push(format!("{file}: {from} names {to}, a higher layer"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "layers: {}",
        LAYERS
            .iter()
            .map(|l| l.join("/"))
            .collect::<Vec<_>>()
            .join(" → ")
            + "\n"
            + &wrong.join("\n")
    );
}

#[test]
fn no_two_modules_name_each_other_however_far_round() {
    let src = src_dir();
    let graph = dependencies(&src);
    let edges: BTreeMap<&str, BTreeSet<&str>> = graph
        .iter()
        .map(|(from, to)| {
            (
                from.as_str(),
                to.keys()
                    .map(String::as_str)
                    .filter(|t| *t != from)
                    .collect(),
            )
        })
        .collect();
    // Depth-first search for a circle; reports the first found.
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, BTreeSet<&'a str>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<&'a str>> {
        if let Some(at) = stack.iter().position(|n| *n == node) {
            let mut circle = stack[at..].to_vec();
            circle.push(node);
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node);
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node);
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            let detail: Vec<String> = circle
                .windows(2)
                .map(|w| format!("{} → {} (in {})", w[0], w[1], graph[w[0]][w[1]]))
                .collect();
            panic!("an import circle:\n{}", detail.join("\n"));
        }
    }
}

#[test]
fn the_reader_finds_paths_in_use_groups_and_inline() {
    let code = code_only(
        "use crate::{a::b::{C, d::E}, f, k::{self as kk, L}, m::*};\n// crate::ghost\nlet x = crate::g::h(\"crate::nope\");",
    );
    let found: Vec<Vec<String>> = paths_after(&code, "crate::")
        .into_iter()
        .map(|p| modules_of(&p))
        .collect();
    let want: Vec<Vec<String>> = [
        vec!["a", "b"],
        vec!["a", "b", "d"],
        vec!["f"],
        vec!["k"],
        vec!["k"],
        vec!["m"],
        vec!["g", "h"],
    ]
    .iter()
    .map(|v| v.iter().map(|s| s.to_string()).collect())
    .collect();
    assert_eq!(found, want);
}

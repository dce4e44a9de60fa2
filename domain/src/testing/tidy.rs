//! Source scanning for the `tidy` tests: the architecture's claims that code can check, checked by
//! `cargo test` next to the crate each one governs (rust-analyzer's habit).

use std::path::{Path, PathBuf};

/// One production source file, cut before its first `#[cfg(test)]`: by this workspace's
/// convention, a file's unit tests are its last item.
pub struct Source {
    pub path: PathBuf,
    pub text: String,
}

/// Every `.rs` file under `dir`, minus test code: `tests/` directories, the `testing` module, and
/// each file's `#[cfg(test)]` tail.
pub fn production_sources(dir: &Path) -> Vec<Source> {
    let mut sources = Vec::new();
    collect(dir, &mut sources);
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    sources
}

fn collect(dir: &Path, sources: &mut Vec<Source>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() {
            if name != "tests" && name != "testing" {
                collect(&path, sources);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let end = text.find("#[cfg(test)]").unwrap_or(text.len());
            sources.push(Source {
                path,
                text: text[..end].to_string(),
            });
        }
    }
}

/// `file:line` of every `.unwrap()` or `.expect(` outside `const` items (those run in the
/// compiler: a failure there is a build error, never a panic at run time).
pub fn unwrap_or_expect_calls(sources: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for source in sources {
        for (n, line) in source.text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            let in_const = code.trim_start().starts_with("const ")
                || code.trim_start().starts_with("pub const ");
            if !in_const && (code.contains(".unwrap()") || code.contains(".expect(")) {
                found.push(format!("{}:{}", source.path.display(), n + 1));
            }
        }
    }
    found
}

/// The contents of the string literals in `text` (plain and raw), comments skipped.
pub fn string_literals(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut literals = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '/' if chars.get(i + 1) == Some(&'/') => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            'r' if matches!(chars.get(i + 1), Some('"' | '#'))
                && !chars
                    .get(i.wrapping_sub(1))
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_') =>
            {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let start = i + 2 + hashes;
                let mut end = start;
                while end < chars.len()
                    && !(chars[end] == '"'
                        && chars[end + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|c| **c == '#')
                            .count()
                            == hashes)
                {
                    end += 1;
                }
                literals.push(chars[start..end.min(chars.len())].iter().collect());
                i = end + 1 + hashes;
            }
            '\'' => {
                // A char literal ('"', '\'', 'x'); anything else is a lifetime.
                if chars.get(i + 1) == Some(&'\\') {
                    i += 4;
                } else if chars.get(i + 2) == Some(&'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            '"' => {
                let mut literal = String::new();
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    if let Some(c) = chars.get(i) {
                        literal.push(*c);
                    }
                    i += 1;
                }
                literals.push(literal);
                i += 1;
            }
            _ => i += 1,
        }
    }
    literals
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tidy_string_literals_are_found_past_comments_chars_and_raw_strings() {
        let text = r##"let a = "one"; // "not this"
let b = '"'; let c: &'static str = r#"two "x""#; let d = "th\"ree";"##;
        assert_eq!(string_literals(text), vec!["one", "two \"x\"", "th\"ree"]);
    }
}

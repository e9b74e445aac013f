//! Friendlier config errors (issue 17): JSON5 syntax errors with line/column and a note on
//! unbalanced braces; unknown keys with "did you mean `<key>`" by edit distance; every fix
//! points at `docs/configuration.md`, which is generated from the schema (`config::docs`).
//!
//! Invariant: pure functions of the text and the error; nothing here reads files.

/// The fix line every schema error carries.
pub const DOC_FIX: &str = "see docs/configuration.md for every key and its values";

/// Explains a JSON5 parse failure: where, and an unclosed or extra bracket when that is it.
pub fn syntax_problem(text: &str, err: &json5::Error) -> String {
    let json5::Error::Message { msg, location } = err;
    let at = location
        .as_ref()
        .map(|l| format!(" at line {}, column {}", l.line, l.column))
        .unwrap_or_default();
    match unbalanced(text) {
        Some(note) => format!("JSON5 syntax error{at}: {note}"),
        None => format!("JSON5 syntax error{at}: {}", first_line(msg)),
    }
}

fn first_line(msg: &str) -> &str {
    msg.lines().next().unwrap_or(msg)
}

/// `Some("missing `}` …")` when braces or brackets (outside strings and comments) do not balance.
pub fn unbalanced(text: &str) -> Option<String> {
    let mut stack: Vec<(char, usize)> = Vec::new();
    let mut chars = text.chars().peekable();
    let (mut line, mut quote) = (1usize, None::<char>);
    while let Some(c) = chars.next() {
        if c == '\n' {
            line += 1;
        }
        if let Some(q) = quote {
            match c {
                '\\' => {
                    chars.next();
                }
                c if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '/' if chars.peek() == Some(&'/') => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        line += 1;
                        break;
                    }
                }
            }
            '{' | '[' => stack.push((c, line)),
            '}' | ']' => {
                let want = if c == '}' { '{' } else { '[' };
                match stack.pop() {
                    Some((open, _)) if open == want => {}
                    _ => return Some(format!("unexpected `{c}` on line {line}")),
                }
            }
            _ => {}
        }
    }
    stack.last().map(|(open, l)| {
        let close = if *open == '{' { '}' } else { ']' };
        format!("missing `{close}`: the `{open}` opened on line {l} is never closed")
    })
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" into a did-you-mean.
pub fn unknown_field(path: &str, msg: &str) -> Option<(String, String)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let (name, rest) = rest.split_once('`')?;
    let expected: Vec<&str> = rest.split('`').skip(1).step_by(2).collect();
    // serde_path_to_error names the field itself as the last segment: its parent is the rest.
    let parent = path
        .strip_suffix(name)
        .unwrap_or(path)
        .trim_end_matches('.');
    let problem = format!("unknown key `{}`", join(parent, name));
    let fix = match suggest(name, &expected) {
        Some(best) => format!("did you mean `{}`? ({DOC_FIX})", join(parent, best)),
        None if expected.is_empty() => format!("remove it ({DOC_FIX})"),
        None => format!("known keys here: {} ({DOC_FIX})", expected.join(", ")),
    };
    Some((problem, fix))
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() || parent == "." {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// The closest known key within a small edit distance (case-insensitive).
pub fn suggest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (levenshtein(&lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_brace_is_named_with_its_line() {
        let text = "{\n  gateway: {\n    port: 18789,\n}\n";
        let note = unbalanced(text).unwrap();
        assert!(
            note.contains("missing `}`") && note.contains("line 1"),
            "{note}"
        );
        assert_eq!(unbalanced("{a: '}', // }\n b: [1]}"), None);
        assert!(unbalanced("{a: 1}}").unwrap().contains("unexpected `}`"));
    }

    #[test]
    fn unknown_keys_get_the_nearest_known_key() {
        let msg = "unknown field `prot`, expected one of `port`, `bind`, `auth`";
        let (problem, fix) = unknown_field("gateway.prot", msg).unwrap();
        assert_eq!(problem, "unknown key `gateway.prot`");
        assert!(fix.starts_with("did you mean `gateway.port`?"), "{fix}");
        assert!(fix.contains("docs/configuration.md"));
        assert_eq!(suggest("zzzzzz", &["port", "bind"]), None);
        assert_eq!(suggest("Bnd", &["port", "bind"]), Some("bind"));
    }
}

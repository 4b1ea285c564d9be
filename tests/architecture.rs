//! The layers of ARCHITECTURE.md hold: reads every file under `src/` and
//! fails, naming the file and line, when a module imports one that comes
//! after it in the layer order (the core never imports `k8s` or `cli`;
//! `k8s` never imports `cli`; storage never imports the repository; ...).
//!
//! The order, from the bottom up (a module may use those before it):
//!
//! | row | modules |
//! |---|---|
//! | 0 | `id` |
//! | 1 | `format` |
//! | 2 | `crypto`, `chunker` (neither uses the other) |
//! | 3 | `storage` |
//! | 4 | `repo` |
//! | 5 | `source` |
//! | 6 | `backup` |
//! | 7 | `restore` |
//! | 8 | `check`, `maintenance`, `prune`, `forget` (maintenance: they may use each other) |
//! | 9 | `k8s` |
//! | 10 | `cli` |
//!
//! This is the list order of ARCHITECTURE.md's layer table. Its "knows
//! nothing of" column says more than the order in one place: `crypto`
//! reads the envelope and key file layouts of `format` (and `chunker` its
//! chunker parameters), which the order allows.
//!
//! `main.rs` and `lib.rs` stand above all. Imports are read as the
//! `crate::<module>` paths of every line that is not a comment, grouped
//! `use crate::{...}` lists included.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Each module's row, and whether modules of the same row may use each
/// other.
const LAYERS: &[(&[&str], bool)] = &[
    (&["id"], false),
    (&["format"], false),
    (&["crypto", "chunker"], false),
    (&["storage"], false),
    (&["repo"], false),
    (&["source"], false),
    (&["backup"], false),
    (&["restore"], false),
    (&["check", "maintenance", "prune", "forget"], true),
    (&["k8s"], false),
    (&["cli"], false),
];

/// Items of the crate root every module may use (not layers).
const ROOT_ITEMS: &[&str] = &["install_crypto_provider"];

fn row_of(module: &str) -> Option<(usize, bool)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (names, _))| names.contains(&module))
        .map(|(row, (_, shared))| (row, *shared))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`None` for the
/// crate root and the binary).
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.strip_suffix(".rs") {
        Some("lib" | "main") => None,
        Some(stem) => Some(stem.to_owned()),
        None => Some(first),
    }
}

/// The modules named by `crate::` paths in `text` (one line, or a grouped
/// `use` gathered into one).
fn imported(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("crate::") {
        // `cairn_crate::x` or `some_crate::x` is not this crate.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push(name);
                }
            }
            continue;
        }
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Every (line number, imported module) of a file, comments left out.
fn imports_of(source: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, line) in source.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let code = match code.find("// ") {
            Some(at) => &code[..at],
            None => code,
        };
        if let Some((start, mut text)) = pending.take() {
            text.push_str(code);
            if code.contains('}') {
                out.extend(imported(&text).into_iter().map(|m| (start, m)));
            } else {
                pending = Some((start, text));
            }
            continue;
        }
        if code.contains("crate::{") && !code[code.find("crate::{").unwrap_or(0)..].contains('}') {
            pending = Some((i + 1, code.to_owned()));
            continue;
        }
        out.extend(imported(code).into_iter().map(|m| (i + 1, m)));
    }
    out
}

/// What breaks the order: one line per import, naming file and line.
fn violations(root: &Path) -> Vec<String> {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for path in files {
        let rel = path.strip_prefix(&src).unwrap();
        let Some(module) = module_of(rel) else { continue };
        let shown = format!("src/{}", rel.display());
        let Some((row, shared)) = row_of(&module) else {
            problems.push(format!(
                "{shown}: module `{module}` has no place in the layer table of tests/architecture.rs \
                 (ARCHITECTURE.md's order)"
            ));
            continue;
        };
        let source = std::fs::read_to_string(&path).unwrap();
        for (line, target) in imports_of(&source) {
            if target == module || ROOT_ITEMS.contains(&target.as_str()) {
                continue;
            }
            let Some((target_row, _)) = row_of(&target) else {
                problems.push(format!("{shown}:{line}: imports `crate::{target}`, which is no layer"));
                continue;
            };
            let allowed = target_row < row || (target_row == row && shared);
            if !allowed {
                problems.push(format!(
                    "{shown}:{line}: `{module}` imports `crate::{target}`, which stands {} it",
                    if target_row == row { "beside" } else { "above" }
                ));
            }
        }
    }
    problems
}

#[test]
fn no_module_imports_one_above_it() {
    let problems = violations(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        problems.is_empty(),
        "imports against the layer order:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_check_reads_imports_as_written() {
    assert_eq!(imported("use crate::repo::{Repository, LockKind};"), ["repo"]);
    assert_eq!(imported("use crate::{backup::X, k8s::Y};"), ["backup", "k8s"]);
    assert_eq!(
        imported("let x = crate::cli::run(a, crate::storage::open(b));"),
        ["cli", "storage"]
    );
    assert!(imported("use kube_crate::cli;").is_empty());
    let file = "// use crate::cli;\n/// [`crate::k8s`]\nuse crate::{\n    format::X,\n    cli::Y,\n};\nfn f() { crate::id::Z } // crate::k8s\n";
    assert_eq!(
        imports_of(file),
        [(3, "format".to_owned()), (3, "cli".to_owned()), (7, "id".to_owned())]
    );
}

#[test]
fn a_backward_import_is_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    for (path, text) in [
        ("lib.rs", "pub mod storage;\npub mod k8s;\n"),
        (
            "storage/mod.rs",
            "use crate::format::X;\n\nuse crate::repo::Repository;\n",
        ),
        ("k8s/mod.rs", "use crate::repo::Repository;\n"),
        ("repo/mod.rs", "fn f() { crate::k8s::jobs::run() }\n"),
        ("check/mod.rs", "use crate::prune::plan;\n"),
        ("crypto/mod.rs", "use crate::chunker::Chunker;\n"),
        ("gadgets/mod.rs", "\n"),
    ] {
        let p = src.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let found: BTreeMap<String, String> = violations(dir.path())
        .into_iter()
        .map(|v| (v.split(": ").next().unwrap().to_owned(), v))
        .collect();
    let keys: Vec<&str> = found.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "src/crypto/mod.rs:1",
            "src/gadgets/mod.rs",
            "src/repo/mod.rs:1",
            "src/storage/mod.rs:3"
        ],
        "{found:#?}"
    );
    assert!(found["src/storage/mod.rs:3"].contains("`storage` imports `crate::repo`"));
    assert!(found["src/crypto/mod.rs:1"].contains("beside"));
}

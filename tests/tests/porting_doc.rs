//! `docs/PORTING.md` states what each route to a new executor costs, in code lines of the
//! adapters that prove it. This recounts them, so the table cannot go stale: a figure more
//! than a fifth off fails here.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Lines that are neither blank nor comments, up to a file's `#[cfg(test)]` module.
fn code_lines(path: &Path) -> usize {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("directory")
            .map(|e| e.expect("entry").path())
            .collect();
        entries.sort();
        return entries
            .iter()
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "rs"))
            .map(|p| code_lines(p))
            .sum();
    }
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .filter(|l| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with("//")
        })
        .count()
}

#[test]
fn the_porting_table_counts_what_is_there() {
    let doc = std::fs::read_to_string(root().join("docs/PORTING.md")).expect("PORTING.md");
    let mut checked = 0;
    for row in doc.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let (Some(proved_by), Some(Ok(stated))) =
            (cells.get(2), cells.get(3).map(|c| c.parse::<usize>()))
        else {
            continue;
        };
        // The path is the last `…` in the "proved by" cell.
        let path = proved_by
            .rsplit('`')
            .nth(1)
            .unwrap_or_else(|| panic!("no path in {row:?}"));
        let counted = code_lines(&root().join(path));
        println!("{path}: stated {stated}, counted {counted}");
        let (lo, hi) = (stated * 4 / 5, stated * 6 / 5);
        assert!(
            (lo..=hi).contains(&counted),
            "PORTING.md says {path} has {stated} code lines; it has {counted}: update the table"
        );
        checked += 1;
    }
    assert_eq!(checked, 5, "every route's adapter is in the table");
}

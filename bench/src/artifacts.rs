//! The size of each Lambda zip that `cargo lambda build --release --output-format zip` made.

use std::path::Path;

use crate::stats;

pub fn run(lambda_dir: &Path, binaries: &Path) -> Result<(), String> {
    let mut rows = Vec::new();
    for function in ["connect", "disconnect", "default", "authorizer", "fanout"] {
        let zip = lambda_dir.join(function).join("bootstrap.zip");
        let size = std::fs::metadata(&zip)
            .map_err(|e| {
                format!(
                    "{}: {e} (build first: cargo lambda build --release --output-format zip)",
                    zip.display()
                )
            })?
            .len();
        let binary = std::fs::metadata(binaries.join(function))
            .map(|m| m.len())
            .ok();
        rows.push(vec![
            function.to_string(),
            format!("{:.2}", size as f64 / 1_048_576.0),
            binary.map_or("-".into(), |b| format!("{:.2}", b as f64 / 1_048_576.0)),
        ]);
    }
    println!("Lambda artifacts in {}\n", lambda_dir.display());
    stats::table(&["function", "zip MiB", "bootstrap MiB"], &rows);
    Ok(())
}

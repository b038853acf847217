//! Projects: a zip or a directory of modules and packages (services and
//! their helper modules) deployed as one versioned unit of the registry.
//! The validating worker checks the zip (`python/alpharen/archive.py`) and
//! imports the unit (`project.py`); here: what a deploy sends it, and the
//! rule that two units never share a top-level module name (the workers
//! import every unit's modules under their own names, so a clash would
//! let one unit shadow the other's helpers).

use serde_json::{Value, json};

use crate::registry::{ActiveModule, Files};

/// Appended to `registry::SCHEMA`: a version's unit files, and the
/// uploaded Python packages (`packages.rs`) with the history of the set.
pub const SCHEMA_STEP: &str = r#"
    ALTER TABLE integrator_versions ADD COLUMN files TEXT;
    CREATE TABLE integrator_packages (
        name TEXT PRIMARY KEY,
        version TEXT NOT NULL,
        file TEXT NOT NULL,
        tags TEXT NOT NULL,
        top_level TEXT NOT NULL,
        size INTEGER NOT NULL,
        dir TEXT NOT NULL,
        wheel BLOB NOT NULL,
        added_at INTEGER NOT NULL,
        actor TEXT NOT NULL
    );
    CREATE TABLE integrator_package_sets (
        version INTEGER PRIMARY KEY,
        packages TEXT NOT NULL,
        change TEXT NOT NULL,
        changed_at INTEGER NOT NULL,
        actor TEXT NOT NULL
    );
"#;

pub use alpharen_rpc::MAX_ARCHIVE;

/// What a deploy brings.
pub enum Upload {
    /// One `.py` file's source.
    Source(String),
    /// A project zip, base64.
    Zip(String),
    /// A project directory's `.py` files (path → source), read by `ctl`.
    Files(Files),
}

/// The registry module a unit deploys as: `NAME.zip` or a directory
/// `NAME` → `NAME` with non-identifier characters as `_`.
pub fn unit_name(file: &str) -> Option<String> {
    let base = file.trim_end_matches('/').rsplit('/').next()?;
    crate::registry::module_name(&format!("{}.py", base.strip_suffix(".zip").unwrap_or(base)))
}

/// The `validate` frame for an upload.
pub fn validate_msg(module: &str, file: &str, upload: &Upload) -> Value {
    let mut msg = json!({"op": "validate", "module": module, "file": file});
    match upload {
        Upload::Source(s) => msg["source"] = json!(s),
        Upload::Zip(z) => msg["zip"] = json!(z),
        Upload::Files(f) => msg["files"] = json!(f),
    }
    msg
}

/// Top-level module names of a unit (`myproj/db.py` → `myproj`).
pub fn top_names(files: &Files) -> Vec<String> {
    let mut out: Vec<String> = files
        .keys()
        .filter_map(|p| {
            let top = p.split('/').next()?;
            Some(top.strip_suffix(".py").unwrap_or(top).to_string())
        })
        .collect();
    out.dedup();
    out
}

/// A unit's top-level names that another active unit has too, each
/// naming both units.
pub fn clashes(module: &str, file: &str, files: &Files, active: &[ActiveModule]) -> Vec<String> {
    let mine = top_names(files);
    let mut out = Vec::new();
    for other in active.iter().filter(|m| m.module != module) {
        let Some(theirs) = &other.files else { continue };
        for name in top_names(theirs).iter().filter(|n| mine.contains(n)) {
            out.push(format!(
                "module {name} of {file} is also a module of {}: units may not share top-level module names (rename one, or undeploy {})",
                other.file, other.file
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(paths: &[&str]) -> Files {
        paths
            .iter()
            .map(|p| (p.to_string(), String::new()))
            .collect()
    }

    #[test]
    fn unit_names_from_zips_and_directories() {
        assert_eq!(unit_name("shop.zip").as_deref(), Some("shop"));
        assert_eq!(unit_name("/home/me/my-proj/").as_deref(), Some("my_proj"));
        assert_eq!(unit_name("").as_deref(), None);
    }

    #[test]
    fn top_names_of_modules_and_packages() {
        let f = files(&["models.py", "myproj/__init__.py", "myproj/db.py", "svc.py"]);
        assert_eq!(top_names(&f), ["models", "myproj", "svc"]);
    }

    #[test]
    fn a_shared_helper_name_is_refused_naming_both_units() {
        let other = ActiveModule {
            module: "billing".into(),
            version: 3,
            file: "billing.zip".into(),
            source: String::new(),
            services: vec![],
            files: Some(files(&["models.py", "bill.py"])),
        };
        let single = ActiveModule {
            files: None,
            module: "models".into(),
            file: "models.py".into(),
            ..other.clone()
        };
        let mine = files(&["models.py", "shop.py"]);
        let p = clashes("shop", "shop.zip", &mine, &[other.clone(), single]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("shop.zip") && p[0].contains("billing.zip"),
            "{p:?}"
        );
        // A new version of the same unit does not clash with itself.
        assert!(clashes("billing", "billing.zip", &mine, &[other]).is_empty());
    }
}

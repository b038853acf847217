//! The Python SDK (`python/`: the `alpharen` and `zato` packages and
//! `bunch`) embedded in the binary and written out for the workers.

use std::path::Path;

use crate::Error;

/// The SDK shipped inside the binary, written out for the workers.
const SDK: &[(&str, &str)] = &[
    ("bunch.py", include_str!("../python/bunch.py")),
    (
        "alpharen/__init__.py",
        include_str!("../python/alpharen/__init__.py"),
    ),
    (
        "alpharen/integrator.py",
        include_str!("../python/alpharen/integrator.py"),
    ),
    (
        "alpharen/worker.py",
        include_str!("../python/alpharen/worker.py"),
    ),
    (
        "alpharen/dispatch.py",
        include_str!("../python/alpharen/dispatch.py"),
    ),
    ("alpharen/sio.py", include_str!("../python/alpharen/sio.py")),
    (
        "alpharen/model.py",
        include_str!("../python/alpharen/model.py"),
    ),
    (
        "alpharen/commands.py",
        include_str!("../python/alpharen/commands.py"),
    ),
    (
        "alpharen/outgoing.py",
        include_str!("../python/alpharen/outgoing.py"),
    ),
    ("alpharen/sql.py", include_str!("../python/alpharen/sql.py")),
    (
        "alpharen/amqp.py",
        include_str!("../python/alpharen/amqp.py"),
    ),
    (
        "alpharen/dbapi.py",
        include_str!("../python/alpharen/dbapi.py"),
    ),
    (
        "alpharen/sqlorm.py",
        include_str!("../python/alpharen/sqlorm.py"),
    ),
    (
        "alpharen/mail.py",
        include_str!("../python/alpharen/mail.py"),
    ),
    ("alpharen/wsx.py", include_str!("../python/alpharen/wsx.py")),
    (
        "alpharen/shim/sqlalchemy/__init__.py",
        include_str!("../python/alpharen/shim/sqlalchemy/__init__.py"),
    ),
    (
        "alpharen/shim/sqlalchemy/exc.py",
        include_str!("../python/alpharen/shim/sqlalchemy/exc.py"),
    ),
    (
        "alpharen/shim/sqlalchemy/sql/__init__.py",
        include_str!("../python/alpharen/shim/sqlalchemy/sql/__init__.py"),
    ),
    (
        "alpharen/deploycheck.py",
        include_str!("../python/alpharen/deploycheck.py"),
    ),
    (
        "alpharen/kvdb.py",
        include_str!("../python/alpharen/kvdb.py"),
    ),
    (
        "alpharen/crypto.py",
        include_str!("../python/alpharen/crypto.py"),
    ),
    (
        "alpharen/archive.py",
        include_str!("../python/alpharen/archive.py"),
    ),
    (
        "alpharen/project.py",
        include_str!("../python/alpharen/project.py"),
    ),
    (
        "alpharen/cache.py",
        include_str!("../python/alpharen/cache.py"),
    ),
    (
        "alpharen/zatoapi.py",
        include_str!("../python/alpharen/zatoapi.py"),
    ),
    (
        "zato/__init__.py",
        include_str!("../python/zato/__init__.py"),
    ),
    (
        "zato/server/__init__.py",
        include_str!("../python/zato/server/__init__.py"),
    ),
    (
        "zato/server/service/__init__.py",
        include_str!("../python/zato/server/service/__init__.py"),
    ),
    (
        "zato/server/connection/__init__.py",
        include_str!("../python/zato/server/connection/__init__.py"),
    ),
    (
        "zato/server/connection/http_soap.py",
        include_str!("../python/zato/server/connection/http_soap.py"),
    ),
    (
        "zato/server/commands.py",
        include_str!("../python/zato/server/commands.py"),
    ),
    (
        "zato/common/__init__.py",
        include_str!("../python/zato/common/__init__.py"),
    ),
    (
        "zato/common/exception.py",
        include_str!("../python/zato/common/exception.py"),
    ),
    (
        "zato/common/api.py",
        include_str!("../python/zato/common/api.py"),
    ),
    (
        "zato/common/ext/__init__.py",
        include_str!("../python/zato/common/ext/__init__.py"),
    ),
    (
        "zato/common/ext/bunch.py",
        include_str!("../python/zato/common/ext/bunch.py"),
    ),
];

/// Marks an SDK directory whose bytecode is complete.
const COMPILED: &str = ".compiled";

/// Writes the SDK below `dir` (the workers' `sys.path` entry): only the
/// files whose text changed, so their bytecode stays valid across
/// restarts. True when it needs [`compile`]: something changed, or an
/// earlier compile did not finish.
pub fn write(dir: &Path) -> Result<bool, Error> {
    let marker = dir.join(COMPILED);
    for (rel, text) in SDK {
        let path = dir.join(rel);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        if let Err(e) = std::fs::remove_file(&marker)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(Error::io(format!("remove {}", marker.display()))(e));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(Error::io(format!("create {}", parent.display())))?;
        }
        std::fs::write(&path, text).map_err(Error::io(format!("write {}", path.display())))?;
    }
    Ok(!marker.exists())
}

/// Compiles the SDK to bytecode with `python`, at the lowest CPU
/// priority: the workers may only read the directory, so without it each
/// worker start would compile every SDK module again. The integrator runs
/// it beside its start, not before: until it is done, workers compile in
/// memory, as they would without it. A failure is logged.
pub fn compile(dir: &Path, python: &Path) {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(python);
    cmd.args(["-I", "-S", "-m", "compileall", "-q"]).arg(dir);
    // SAFETY: setpriority is async-signal-safe and uses no memory of the
    // parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setpriority(libc::PRIO_PROCESS, 0, 19);
            Ok(())
        });
    }
    match cmd.output() {
        Ok(o) if o.status.success() => {
            if let Err(e) = std::fs::write(dir.join(COMPILED), b"") {
                tracing::warn!(error = %e, "cannot mark the SDK compiled");
            }
        }
        Ok(o) => tracing::warn!(
            output = %String::from_utf8_lossy(&o.stdout),
            "compiling the SDK failed; workers compile it at each start"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot run {} to compile the SDK", python.display()),
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    #[test]
    fn the_sdk_is_compiled_once_and_rewritten_only_where_it_changed() {
        let dir = tempfile::tempdir().unwrap();
        let py = crate::worker::python();
        assert!(super::write(dir.path()).unwrap());
        super::compile(dir.path(), &py);
        assert!(
            !super::write(dir.path()).unwrap(),
            "compiled, yet asks again"
        );
        let cache = dir.path().join("alpharen/__pycache__");
        let compiled = |name: &str| {
            std::fs::read_dir(&cache)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(name))
        };
        assert!(compiled("worker."), "no bytecode of worker.py");
        assert!(dir.path().join(super::COMPILED).exists());
        let mtime = |rel: &str| {
            std::fs::metadata(dir.path().join(rel))
                .unwrap()
                .modified()
                .unwrap()
        };
        let kept = mtime("alpharen/worker.py");
        // A file changed behind its back is written again and compiled.
        let model = dir.path().join("alpharen/model.py");
        std::fs::write(&model, "x = 1\n").unwrap();
        std::fs::remove_dir_all(&cache).unwrap();
        assert!(super::write(dir.path()).unwrap());
        super::compile(dir.path(), &py);
        assert_ne!(std::fs::read_to_string(&model).unwrap(), "x = 1\n");
        assert!(compiled("model."), "model.py not compiled again");
        assert_eq!(
            mtime("alpharen/worker.py"),
            kept,
            "an unchanged file was rewritten"
        );
    }

    /// The SDK's Python unit tests (`python/tests`), run with the python3
    /// the workers use, against the SDK as written out for them.
    #[test]
    fn python_unit_tests() {
        let dir = tempfile::tempdir().unwrap();
        super::write(dir.path()).unwrap();
        let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/python/tests");
        let out = Command::new(crate::worker::python())
            .args(["-S", "-m", "unittest", "discover", "-s", tests, "-t", tests])
            .env("PYTHONPATH", dir.path())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "python unit tests failed:\n{text}");
        assert!(text.contains("OK"), "{text}");
    }
}

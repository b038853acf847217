//! Deploys: validating a file or unit in a fresh worker, versions,
//! rollback and undeploy, and what the registry holds.

use std::collections::HashMap;
use std::time::Duration;

use alpharen_rpc::RpcError;
use serde_json::{Value, json};

use super::{App, rpc_store};
use crate::deploylog::{Op, Record};
use crate::project::Upload;
use crate::registry::{self, ServiceInfo};
use crate::worker::in_fresh_worker;

/// "FILE, line N: problem", one line per problem a refused deploy found.
fn refusal_message(file: &str, reply: &Value, problems: &[Value]) -> String {
    // A unit's problems each name their own file within it.
    let at = |p: &Value| {
        let f = p["file"].as_str().unwrap_or(file);
        p["line"]
            .as_i64()
            .map(|l| format!("{f}, line {l}"))
            .unwrap_or_else(|| f.to_string())
    };
    if problems.len() > 1 {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| format!("{}: {}", at(p), p["message"].as_str().unwrap_or("")))
            .collect();
        return format!("{file}: {} problems:\n{}", problems.len(), lines.join("\n"));
    }
    format!(
        "{}: {}",
        at(reply),
        reply["error"].as_str().unwrap_or("invalid service file")
    )
}

const VALIDATE_TIMEOUT: Duration = Duration::from_secs(30);

impl App {
    /// Validates a file (or a project unit) in a fresh worker, checks its
    /// names, stores it as a new version and makes every worker load it
    /// before its next request.
    pub async fn deploy(&self, file: &str, upload: Upload, actor: &str) -> Result<Value, RpcError> {
        let module = match upload {
            Upload::Source(_) => registry::module_name(file),
            _ => crate::project::unit_name(file),
        }
        .ok_or_else(|| {
            RpcError::invalid_params(format!(
                "{file:?} is not a .py file, a .zip or a directory name"
            ))
        })?;
        if let Upload::Zip(z) = &upload
            && z.len() > crate::project::MAX_ARCHIVE / 3 * 4 + 4
        {
            return Err(RpcError::invalid_params(format!(
                "{file}: larger than {} KiB; split the project or move big dependencies to wheels",
                crate::project::MAX_ARCHIVE >> 10
            )));
        }
        let _one_at_a_time = self.deploying.lock().await;
        let (services, files) = self.validate(&module, file, &upload).await?;
        let source = match &upload {
            Upload::Source(s) => s.as_str(),
            _ => "",
        };
        let shared = self.cluster_log()?;
        let version = self.engine.data.registry(|s| -> Result<i64, RpcError> {
            let active = registry::active(s).map_err(rpc_store)?;
            let mut problems = registry::name_problems(&module, &services, &active);
            if let Some(f) = &files {
                problems.extend(crate::project::clashes(&module, file, f, &active));
            }
            if !problems.is_empty() {
                return Err(RpcError::new("deploy_refused", problems.join("; "))
                    .with_details(json!({"file": file, "problems": problems})));
            }
            if shared.is_some() {
                return Ok(0);
            }
            let content = registry::Content {
                source,
                files: files.as_ref(),
            };
            registry::add_version(s, &module, file, content, &services, actor).map_err(rpc_store)
        })?;
        let version = match shared {
            None => version,
            Some(kv) => {
                let mut record = Record::new(Op::Deploy, &module, actor, self.node_name());
                record.file = file.to_string();
                record.source = source.to_string();
                record.files = files.clone();
                record.services = services.clone();
                self.share(kv, record).await?.version
            }
        };
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        self.audit(
            actor,
            "integrator.deploy",
            &format!("{file} v{version}: {}", names.join(", ")),
        )
        .await;
        self.publish_code()
            .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
        tracing::info!(file, module = %module, version, services = services.len(), "deployed");
        let listed: Option<Vec<&String>> = files.as_ref().map(|f| f.keys().collect());
        Ok(
            json!({"module": module, "file": file, "version": version, "services": services, "files": listed}),
        )
    }

    /// The services a file or unit defines, and a unit's files as the
    /// worker read them, or every problem it found.
    async fn validate(
        &self,
        module: &str,
        file: &str,
        upload: &Upload,
    ) -> Result<(Vec<ServiceInfo>, Option<registry::Files>), RpcError> {
        let msg = crate::project::validate_msg(module, file, upload);
        let reply = in_fresh_worker(&self.pool.spec(), &msg, VALIDATE_TIMEOUT)
            .await
            .map_err(|e| {
                RpcError::new(
                    "deploy_failed",
                    format!("{file}: validation worker failed: {e}"),
                )
            })?;
        if reply["ok"] != json!(true) {
            let problems = reply["problems"].as_array().cloned().unwrap_or_default();
            let message = refusal_message(file, &reply, &problems);
            return Err(RpcError::new("deploy_failed", message).with_details(json!({
                "file": reply["file"], "line": reply["line"], "traceback": reply["traceback"],
                "problems": problems,
            })));
        }
        let services = serde_json::from_value(reply["services"].clone())
            .map_err(|e| RpcError::new("deploy_failed", format!("worker answer: {e}")))?;
        let files = serde_json::from_value(reply["files"].clone()).unwrap_or(None);
        Ok((services, files))
    }

    fn module_of(&self, name: &str) -> Result<String, RpcError> {
        self.engine
            .data
            .registry(|s| registry::resolve(s, name))
            .map_err(rpc_store)?
            .ok_or_else(|| {
                RpcError::new(
                    "not_found",
                    format!("no deployed service or file is named {name:?}"),
                )
            })
    }

    fn active(&self) -> Result<Vec<registry::ActiveModule>, RpcError> {
        self.engine
            .data
            .registry(registry::active)
            .map_err(rpc_store)
    }

    pub fn list(&self) -> Result<Value, RpcError> {
        Ok(registry::modules_json(&self.active()?))
    }

    /// The channels' OpenAPI document, with the SimpleIO of the active
    /// versions of their services.
    pub fn openapi(&self) -> Result<Value, RpcError> {
        let active = self.active()?;
        let services: HashMap<&str, &ServiceInfo> = active
            .iter()
            .flat_map(|m| m.services.iter().map(|s| (s.name.as_str(), s)))
            .collect();
        Ok(crate::openapi::document(&self.config(), &services))
    }

    pub fn versions(&self, name: &str) -> Result<Value, RpcError> {
        let module = self.module_of(name)?;
        let v = self
            .engine
            .data
            .registry(|s| registry::versions(s, &module))
            .map_err(rpc_store)?;
        Ok(json!(v))
    }

    pub fn source(&self, name: &str, version: Option<i64>) -> Result<Value, RpcError> {
        let module = self.module_of(name)?;
        let found = self
            .engine
            .data
            .registry(|s| registry::source(s, &module, version))
            .map_err(rpc_store)?;
        let (version, file, source, services, files) = found
            .ok_or_else(|| RpcError::new("not_found", format!("{module}: no such version")))?;
        Ok(
            json!({"module": module, "version": version, "file": file, "source": source, "services": services, "files": files}),
        )
    }

    pub async fn rollback(&self, name: &str, version: i64, actor: &str) -> Result<Value, RpcError> {
        let module = self.module_of(name)?;
        let _one_at_a_time = self.deploying.lock().await;
        let (_, file, source, _, files) = self
            .engine
            .data
            .registry(|s| registry::source(s, &module, Some(version)))
            .map_err(rpc_store)?
            .ok_or_else(|| {
                RpcError::new("not_found", format!("{module} has no version {version}"))
            })?;
        // Revalidated: the other modules may have changed since.
        let upload = match files {
            Some(f) => Upload::Files(f),
            None => Upload::Source(source),
        };
        let (services, files) = self.validate(&module, &file, &upload).await?;
        let shared = self.cluster_log()?;
        self.engine.data.registry(|s| -> Result<(), RpcError> {
            let active = registry::active(s).map_err(rpc_store)?;
            let mut problems = registry::name_problems(&module, &services, &active);
            if let Some(f) = &files {
                problems.extend(crate::project::clashes(&module, &file, f, &active));
            }
            if !problems.is_empty() {
                return Err(RpcError::new("deploy_refused", problems.join("; ")));
            }
            if shared.is_some() {
                return Ok(());
            }
            registry::activate(s, &module, version).map_err(rpc_store)
        })?;
        if let Some(kv) = shared {
            // The whole version travels: a member that never had it
            // still rolls back.
            let mut record = Record::new(Op::Rollback, &module, actor, self.node_name());
            record.version = version;
            record.file = file;
            if let Upload::Source(s) = upload {
                record.source = s;
            }
            record.files = files;
            record.services = services;
            self.share(kv, record).await?;
        }
        self.audit(
            actor,
            "integrator.rollback",
            &format!("{module} v{version}"),
        )
        .await;
        self.publish_code()
            .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
        Ok(json!({"module": module, "version": version}))
    }

    pub async fn undeploy(&self, name: &str, actor: &str) -> Result<Value, RpcError> {
        let module = self.module_of(name)?;
        let removed = match self.cluster_log()? {
            None => self
                .engine
                .data
                .registry(|s| registry::deactivate(s, &module))
                .map_err(rpc_store)?,
            Some(kv) => {
                let _one_at_a_time = self.deploying.lock().await;
                let was = self.active()?.iter().any(|m| m.module == module);
                let record = Record::new(Op::Undeploy, &module, actor, self.node_name());
                self.share(kv, record).await?;
                was
            }
        };
        self.audit(actor, "integrator.undeploy", &module).await;
        self.publish_code()
            .map_err(|e| RpcError::new("internal_error", e.to_string()))?;
        Ok(json!({"module": module, "removed": removed}))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_refusal_names_file_and_line_of_every_problem() {
        let one = json!({"line": 3, "error": "SyntaxError: x"});
        assert_eq!(
            super::refusal_message("a.py", &one, &[]),
            "a.py, line 3: SyntaxError: x"
        );
        let problems = [
            json!({"line": 1, "message": "`import redis`: not installed"}),
            json!({"line": null, "message": "no service"}),
        ];
        assert_eq!(
            super::refusal_message("a.py", &json!({"error": "2 problems"}), &problems),
            "a.py: 2 problems:\na.py, line 1: `import redis`: not installed\na.py: no service"
        );
    }
}

//! Where the CLI's settings come from: the process environment, and optionally a
//! `KEY=VALUE` file (the one `make dev` writes to `target/local-stack.env`).

use std::collections::HashMap;
use std::path::Path;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;

use crate::error::CliError;

/// The table name when `VENTANA_TABLE_NAME` is not set.
pub const DEFAULT_TABLE: &str = "ventana";
/// The region used with an `AWS_ENDPOINT_URL` (a local emulator) when none is set, so that
/// the SDK never asks the instance-metadata service for one.
const LOCAL_REGION: &str = "us-east-1";

/// The variables the CLI reads, looked up in the env file first, then in the process
/// environment. Empty values count as unset.
#[derive(Clone, Default)]
pub struct Env {
    file: HashMap<String, String>,
    process: HashMap<String, String>,
}

impl std::fmt::Debug for Env {
    // Only the names: values may include credentials.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("file", &self.file.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Env {
    /// The process environment only.
    pub fn from_process() -> Env {
        Env {
            file: HashMap::new(),
            process: std::env::vars().collect(),
        }
    }

    /// The process environment with the file's variables on top: a value in an explicitly
    /// named file wins over an ambient one (a stray `OUTBOUND_DLQ_URL` in the shell must not
    /// turn a local redrive into a production one).
    pub fn with_file(path: &Path) -> Result<Env, CliError> {
        let text = std::fs::read_to_string(path).map_err(|source| CliError::EnvFileRead {
            path: path.to_path_buf(),
            source,
        })?;
        let file = parse_env_file(&text).map_err(|(line, reason)| CliError::EnvFileLine {
            path: path.to_path_buf(),
            line,
            reason,
        })?;
        Ok(Env {
            file,
            ..Env::from_process()
        })
    }

    /// An environment from pairs (tests).
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Env {
        Env {
            file: pairs
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            process: HashMap::new(),
        }
    }

    /// A variable's value, if set and not blank.
    pub fn get(&self, name: &str) -> Option<&str> {
        non_blank(&self.file, name).or_else(|| non_blank(&self.process, name))
    }

    /// A variable the command cannot do without.
    pub fn required(&self, name: &'static str) -> Result<&str, CliError> {
        self.get(name).ok_or(CliError::Missing(name))
    }

    /// The AWS SDK configuration: `AWS_ENDPOINT_URL`, `AWS_REGION` (or `AWS_DEFAULT_REGION`)
    /// and static credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` /
    /// `AWS_SESSION_TOKEN` when given here (the env file's dummy ones for moto); otherwise the
    /// SDK's usual chain (profile, SSO, instance role…). Nothing process-wide is set.
    pub async fn sdk_config(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        let endpoint = self.get("AWS_ENDPOINT_URL");
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
        }
        match self
            .get("AWS_REGION")
            .or_else(|| self.get("AWS_DEFAULT_REGION"))
        {
            Some(region) => loader = loader.region(Region::new(region.to_owned())),
            None if endpoint.is_some() => loader = loader.region(Region::new(LOCAL_REGION)),
            None => {}
        }
        if let (Some(id), Some(secret)) = (
            self.get("AWS_ACCESS_KEY_ID"),
            self.get("AWS_SECRET_ACCESS_KEY"),
        ) {
            loader = loader.credentials_provider(Credentials::new(
                id,
                secret,
                self.get("AWS_SESSION_TOKEN").map(str::to_owned),
                None,
                "ventana-env",
            ));
        }
        loader.load().await
    }
}

fn non_blank<'a>(vars: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// Reads `KEY=VALUE` lines: blank lines and `#` comments are skipped, an `export ` prefix
/// is allowed, the value may be wrapped in single or double quotes. Errors give the line
/// number (from 1) and the reason, never the line (it may hold a credential).
pub fn parse_env_file(text: &str) -> Result<HashMap<String, String>, (usize, &'static str)> {
    let mut vars = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err((i + 1, "expected KEY=VALUE"));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err((i + 1, "the name must be letters, digits and _"));
        }
        let value = value.trim();
        let value = ['"', '\'']
            .iter()
            .find_map(|q| value.strip_prefix(*q).and_then(|v| v.strip_suffix(*q)))
            .unwrap_or(value);
        vars.insert(key.to_owned(), value.to_owned());
    }
    Ok(vars)
}

/// The names of the resources a command acts on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `VENTANA_TABLE_NAME` (default [`DEFAULT_TABLE`]).
    pub table: String,
}

impl Settings {
    /// Reads them from `env`.
    pub fn from_env(env: &Env) -> Settings {
        Settings {
            table: env
                .get("VENTANA_TABLE_NAME")
                .unwrap_or(DEFAULT_TABLE)
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_are_read_line_by_line() {
        let vars = parse_env_file(
            "# comment\n\nAWS_REGION=us-east-1\nexport VENTANA_TABLE_NAME = t1 \nQ=\"http://x/q.fifo\"\nS='a=b'\nEMPTY=\n",
        )
        .unwrap();
        assert_eq!(vars["AWS_REGION"], "us-east-1");
        assert_eq!(vars["VENTANA_TABLE_NAME"], "t1");
        assert_eq!(vars["Q"], "http://x/q.fifo");
        assert_eq!(vars["S"], "a=b");
        assert_eq!(vars["EMPTY"], "");
    }

    #[test]
    fn a_bad_line_is_reported_by_number() {
        assert_eq!(
            parse_env_file("A=1\nnot a pair\n"),
            Err((2, "expected KEY=VALUE"))
        );
        assert_eq!(
            parse_env_file("1A=1").unwrap_err().1,
            "the name must be letters, digits and _"
        );
        assert_eq!(parse_env_file("A B=1").unwrap_err().0, 1);
    }

    #[test]
    fn the_file_wins_and_blank_values_are_unset() {
        let env = Env {
            file: [("A", "file"), ("B", " ")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
            process: [("A", "process"), ("B", "process"), ("C", "process")]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .into(),
        };
        assert_eq!(env.get("A"), Some("file"));
        assert_eq!(env.get("B"), Some("process"));
        assert_eq!(env.get("C"), Some("process"));
        assert_eq!(env.get("D"), None);
        assert!(matches!(env.required("D"), Err(CliError::Missing("D"))));
    }

    #[test]
    fn the_table_defaults_to_ventana() {
        assert_eq!(Settings::from_env(&Env::default()).table, "ventana");
        let env = Env::from_pairs([("VENTANA_TABLE_NAME", "other")]);
        assert_eq!(Settings::from_env(&env).table, "other");
    }
}

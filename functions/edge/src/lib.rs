//! `wa-edge`: what every Ventana Lambda binary needs at start-up, and nothing else.
//!
//! It reads configuration from the environment, fetches secrets (from the environment for
//! local runs, from Secrets Manager in AWS via `<NAME>_ARN`), loads the AWS SDK configuration
//! once (honouring `AWS_ENDPOINT_URL`, which the tests and the local stack point at moto), and
//! sets up logging. It knows nothing of WhatsApp: the domain lives in `wa-domain`.

use std::collections::HashMap;

use secrecy::SecretString;

/// A configuration problem found at start-up. The binary fails its init, not a request.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why it is invalid (never its value: it may be a secret).
        reason: String,
    },
    /// Secrets Manager could not give the secret.
    #[error("secret {0} could not be read from Secrets Manager")]
    Secret(
        &'static str,
        #[source] Box<dyn std::error::Error + Send + Sync>,
    ),
}

/// A required variable.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable read with `parse`, with a default; `expected` says what it may be
/// when it is not that.
pub fn parsed<T>(
    name: &'static str,
    default: T,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => parse(v.trim()).ok_or_else(|| ConfigError::Invalid {
            name,
            reason: format!("expected {expected}"),
        }),
        _ => Ok(default),
    }
}

/// An optional variable, with a default.
pub fn optional(name: &'static str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// An optional number, with a default; a set but unparseable value is an error.
pub fn number<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v.trim().parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: "not a number".into(),
        }),
        _ => Ok(default),
    }
}

/// Reads `PACING_NUMBER_MPS` (the deliver worker's and the broadcast planner's): `pnid=mps` pairs separated by commas (`106540352242922=1000,
/// 106540352242923=20`); empty means none.
pub fn number_mps(spec: &str) -> Result<HashMap<String, u32>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "PACING_NUMBER_MPS",
        reason,
    };
    let mut limits = HashMap::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (pnid, mps) = pair
            .split_once('=')
            .ok_or_else(|| invalid(format!("`{pair}` is not pnid=mps")))?;
        let (pnid, mps) = (pnid.trim(), mps.trim());
        if pnid.is_empty() || !pnid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(format!("`{pnid}` is not a phone number id")));
        }
        let mps: u32 = mps
            .parse()
            .ok()
            .filter(|m| (1..=10_000).contains(m))
            .ok_or_else(|| invalid(format!("`{mps}` is not a rate between 1 and 10000")))?;
        limits.insert(pnid.to_owned(), mps);
    }
    Ok(limits)
}

/// Loads the AWS SDK configuration once, at init (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// Reads a secret: `name` itself when set (local runs), else the Secrets Manager secret whose
/// ARN is in `arn_name` (AWS). Fetched once at init; the value never reaches a log.
pub async fn secret(
    aws: &aws_config::SdkConfig,
    name: &'static str,
    arn_name: &'static str,
) -> Result<SecretString, ConfigError> {
    if let Ok(v) = std::env::var(name)
        && !v.trim().is_empty()
    {
        return Ok(SecretString::from(v));
    }
    let arn = std::env::var(arn_name).map_err(|_| ConfigError::Missing(name))?;
    let client = aws_sdk_secretsmanager::Client::new(aws);
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| ConfigError::Secret(arn_name, e.into()))?;
    out.secret_string()
        .map(|s| SecretString::from(s.to_owned()))
        .ok_or(ConfigError::Invalid {
            name: arn_name,
            reason: "secret has no string value".into(),
        })
}

/// Sets up logging: JSON lines in Lambda (`AWS_LAMBDA_LOG_FORMAT=JSON`), plain text locally;
/// level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default `info`). Message bodies and secrets
/// are never logged at `info`.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into())
        .to_lowercase();
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr);
    // `try_init` fails only if a subscriber is already set (tests): that one is kept.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_mps_are_read_and_checked() {
        let l = number_mps(" 1=1000, 2=20 ,").unwrap();
        assert_eq!(l.get("1"), Some(&1000));
        assert_eq!(l.get("2"), Some(&20));
        assert!(number_mps("").unwrap().is_empty());
        for bad in ["1", "a=5", "1=0", "1=x", "=5", "1=100000"] {
            assert!(number_mps(bad).is_err(), "{bad}");
        }
    }
}

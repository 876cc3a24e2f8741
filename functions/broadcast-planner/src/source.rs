//! The recipient list source the planner is wired with: S3 when `VENTANA_RECIPIENTS_BUCKET`
//! is set ([`wa_s3::S3RecipientSource`]), else [`NoSource`].

use wa_domain::broadcast::{NoSource, RecipientList, RecipientPage, RecipientSource};
use wa_domain::ports::StoreError;

/// One of the two sources, chosen at start-up.
#[derive(Debug, Clone)]
pub enum ListSource {
    /// Lists in S3.
    S3(wa_s3::S3RecipientSource),
    /// No bucket configured: every read fails (send-api refuses such broadcasts anyway).
    None(NoSource),
}

impl ListSource {
    /// S3 through `aws` when `bucket` is not empty, else [`ListSource::None`].
    pub fn from_config(aws: &aws_config::SdkConfig, bucket: &str) -> Self {
        if bucket.is_empty() {
            ListSource::None(NoSource)
        } else {
            ListSource::S3(wa_s3::S3RecipientSource::new(wa_s3::client(aws)))
        }
    }
}

impl RecipientSource for ListSource {
    async fn page(
        &self,
        list: &RecipientList,
        cursor: Option<&str>,
        max_rows: usize,
    ) -> Result<RecipientPage, StoreError> {
        match self {
            ListSource::S3(s) => s.page(list, cursor, max_rows).await,
            ListSource::None(s) => s.page(list, cursor, max_rows).await,
        }
    }
}

//! `broadcast-planner`: the broadcast step queue's consumer. Each SQS record is a step message
//! (`{"v":1,"broadcast_id","chain"}`, [`wa_sqs::encode_step`]); the handler runs
//! [`wa_domain::broadcast::planner::step`] for it and, when the domain says
//! [`StepResult::Again`](wa_domain::broadcast::planner::StepResult::Again), queues the next
//! step with its delay. A record whose step or re-queue failed is reported in
//! `batchItemFailures` (SQS retries it; after `wa_sqs::broadcast::STEP_MAX_RECEIVE_COUNT`
//! receives it goes to the DLQ), as is a record that is not a step message.
//!
//! The binary (`main.rs`) only wires. Environment:
//!
//! | variable | meaning |
//! |---|---|
//! | `VENTANA_TABLE_NAME` | the table (broadcasts, ledger, sends, limits, templates) |
//! | `BROADCAST_QUEUE_URL` | the step queue (standard) this function consumes and re-feeds |
//! | `OUTBOUND_QUEUE_URL` | the outbound FIFO queue the sends are queued on |
//! | `HISTORY_RETENTION_DAYS` | how long sends are kept (default 90, as send-api) |
//! | `MESSAGING_LIMIT_DEFAULT_TIER` | the messaging-limit tier assumed until a webhook tells (`TIER_250`); send-api assumes the same |
//! | `BROADCAST_SETTLE_AFTER_SECS` | when an accepted send is settled as sent/delivered (3600) |
//! | `BROADCAST_RECHECK_SECS` | how soon unsettled sends are looked at again (60) |
//! | `BROADCAST_STEP_BUDGET_SECS` | a step hands over to a fresh step message after the page on which this much time has passed (20; the function's timeout is 60) |
//! | `VENTANA_RECIPIENTS_BUCKET` | the bucket of uploaded recipient CSV lists (`recipients_csv`) |
//!
//! Recipient CSV lists (`recipients_csv`) are read from S3 a page at a time
//! ([`source::ListSource`], [`wa_s3::S3RecipientSource`]); without a bucket the planner runs
//! with [`wa_domain::broadcast::NoSource`] (send-api then refuses such broadcasts).

pub mod config;
pub mod handler;
pub mod source;

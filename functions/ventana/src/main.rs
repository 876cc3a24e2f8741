//! `ventana`: the operator CLI. Parsing and printing only; the actions are in the library.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use ventana::api::Api;
use ventana::broadcast::{self, View};
use ventana::redrive::{self, Outcome, Queues};
use ventana::{CliError, Env, Settings, keys, templates};
use wa_domain::ports::KeyScope;
use wa_dynamodb::DynamoStore;

/// Ventana's operator CLI: API keys, dead-letter redrive, broadcasts and templates.
///
/// Settings come from the environment: VENTANA_TABLE_NAME (default `ventana`),
/// OUTBOUND_QUEUE_URL, OUTBOUND_DLQ_URL, INBOUND_QUEUE_URL, INBOUND_DLQ_URL and the usual
/// AWS_* variables (AWS_ENDPOINT_URL, AWS_REGION, AWS_PROFILE, …).
#[derive(Debug, Parser)]
#[command(name = "ventana", version)]
struct Cli {
    /// Read KEY=VALUE lines from this file first; its values win over the environment.
    /// `make dev` writes target/local-stack.env for this.
    #[arg(long, global = true, value_name = "PATH")]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create or revoke API keys (stored hashed, scoped to phone number ids).
    #[command(subcommand)]
    ApiKey(ApiKeyCommand),
    /// Dead-letter queues.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Conversation history in the table.
    #[command(subcommand)]
    History(HistoryCommand),
    /// Broadcasts through the HTTP API (VENTANA_URL, VENTANA_API_KEY).
    Broadcast {
        #[command(flatten)]
        api: ApiFlags,
        #[command(subcommand)]
        command: BroadcastCommand,
    },
    /// The template registry through the HTTP API (VENTANA_URL, VENTANA_API_KEY).
    Templates {
        #[command(flatten)]
        api: ApiFlags,
        #[command(subcommand)]
        command: TemplatesCommand,
    },
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Make each BSUID's history include what its phone alias recorded before Meta sent the
    /// BSUID, for aliases made before Ventana linked them (run once after upgrading; running
    /// it again changes nothing). Scans the table.
    LinkAliases,
}

#[derive(Debug, Subcommand)]
enum TemplatesCommand {
    /// Read the account's templates from the Graph API into the registry now.
    Sync {
        /// The WhatsApp Business Account id.
        #[arg(long, value_name = "ID")]
        waba: String,
    },
    /// Print the registry's templates of the account.
    List {
        /// The WhatsApp Business Account id.
        #[arg(long, value_name = "ID")]
        waba: String,
    },
}

#[derive(Debug, Args)]
struct ApiFlags {
    /// The API's base URL (default: VENTANA_URL).
    #[arg(long, global = true, value_name = "URL")]
    api_url: Option<String>,
    /// The API key (default: VENTANA_API_KEY, then VENTANA_DEV_API_KEY).
    #[arg(long, global = true, value_name = "KEY")]
    api_key: Option<String>,
}

#[derive(Debug, Subcommand)]
enum BroadcastCommand {
    /// Send a template to every recipient of a CSV list (columns `to` or `recipient`,
    /// `body.1`, …). Rows that cannot be used are reported and not sent.
    Create(BroadcastCreateArgs),
    /// Show progress until the broadcast completes, then its report.
    Watch {
        /// The broadcast id.
        id: String,
    },
    /// Pause a broadcast (nothing more is released until it is resumed).
    Pause {
        /// The broadcast id.
        id: String,
    },
    /// Resume a paused broadcast.
    Resume {
        /// The broadcast id.
        id: String,
    },
    /// Write every recipient's outcome to a CSV file.
    Export {
        /// The broadcast id.
        id: String,
        /// The file to write.
        #[arg(long, value_name = "FILE.csv")]
        out: PathBuf,
    },
}

#[derive(Debug, Args)]
struct BroadcastCreateArgs {
    /// The phone number id to send from.
    #[arg(long, value_name = "PNID")]
    number: String,
    /// The template's name.
    #[arg(long)]
    template: String,
    /// The template's language code (`es`, `en_US`).
    #[arg(long, value_name = "CODE")]
    language: String,
    /// The recipient list.
    #[arg(long, value_name = "FILE")]
    csv: PathBuf,
    /// Release this percentage of the list at a time (default: the API's, 10).
    #[arg(long, value_name = "P", value_parser = clap::value_parser!(u32).range(1..=100), requires = "every")]
    release_percent: Option<u32>,
    /// Seconds between releases.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(i64).range(1..=86_400), requires = "release_percent")]
    every: Option<i64>,
    /// Send only to recipients with an opt-in record.
    #[arg(long)]
    require_opt_in: bool,
    /// Print the id and return without watching.
    #[arg(long)]
    no_wait: bool,
    /// Upload the list to the recipients bucket instead of sending it inline (done anyway
    /// when it is over the inline limit, 1 MiB of JSON or 10,000 recipients, and when it has
    /// unusable rows, so that the broadcast's ledger records them as skipped_invalid).
    #[arg(long)]
    upload: bool,
}

/// How often `watch` asks for progress.
const POLL: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Subcommand)]
enum ApiKeyCommand {
    /// Create a key and print it once (only its hash is stored).
    Create(CreateArgs),
    /// Revoke a key: it stops authorising requests within about a second.
    Revoke {
        /// The key (`vk_…`); `-` reads it from standard input, keeping it out of shell
        /// history.
        key: String,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("scope").required(true).args(["number", "any_number"])))]
struct CreateArgs {
    /// A phone number id the key may send and read for (repeat for several).
    #[arg(long = "number", value_name = "PNID")]
    number: Vec<String>,
    /// The key may act for every phone number id.
    #[arg(long)]
    any_number: bool,
    /// What the key is for (stored with it).
    #[arg(long, default_value = "created with the ventana CLI")]
    label: String,
}

#[derive(Debug, Subcommand)]
enum DlqCommand {
    /// Move dead-lettered messages back to their queue. For `outbound`, each send is reset
    /// (dead_lettered → pending, attempts 0) before its job is requeued; a send settled
    /// meanwhile is dropped from the DLQ, never sent again.
    Redrive {
        /// Which queue's DLQ.
        queue: QueueName,
        /// At most this many messages.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum QueueName {
    /// OUTBOUND_DLQ_URL → OUTBOUND_QUEUE_URL.
    Outbound,
    /// INBOUND_DLQ_URL → INBOUND_QUEUE_URL.
    Inbound,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut text = format!("ventana: {error}");
            let mut source = std::error::Error::source(&error);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            eprintln!("{text}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), CliError> {
    let env = match &cli.env_file {
        Some(path) => Env::with_file(path)?,
        None => Env::from_process(),
    };
    if let Command::Broadcast { api, command } = cli.command {
        let api = Api::from_settings(&env, api.api_url.as_deref(), api.api_key.as_deref())?;
        return run_broadcast(&api, command).await;
    }
    if let Command::Templates { api, command } = cli.command {
        let api = Api::from_settings(&env, api.api_url.as_deref(), api.api_key.as_deref())?;
        return run_templates(&api, command).await;
    }
    let settings = Settings::from_env(&env);
    let aws = env.sdk_config().await;
    match cli.command {
        // Handled above, without AWS settings.
        Command::Broadcast { .. } | Command::Templates { .. } => Ok(()),
        Command::ApiKey(ApiKeyCommand::Create(args)) => {
            let scope = keys::scope(&args.number, args.any_number)?;
            let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &settings.table);
            let key = keys::create(&store, &scope, &args.label).await?;
            let scope = match &scope {
                KeyScope::AnyNumber => "any phone number id".to_owned(),
                KeyScope::Numbers(ids) => format!("phone number ids {}", ids.join(", ")),
            };
            eprintln!(
                "API key created in table {} for {scope}. Ventana stores only its hash: keep the key now, it cannot be shown again.",
                settings.table
            );
            println!("{key}");
            Ok(())
        }
        Command::ApiKey(ApiKeyCommand::Revoke { key }) => {
            let key = if key == "-" {
                let mut line = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut line)
                    .map_err(CliError::Stdin)?;
                line
            } else {
                key
            };
            let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &settings.table);
            keys::revoke(&store, &key).await?;
            println!("API key revoked (table {}).", settings.table);
            Ok(())
        }
        Command::History(HistoryCommand::LinkAliases) => {
            let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &settings.table);
            let (aliases, linked) = store.link_aliased_histories().await?;
            println!(
                "table {}: {aliases} phone aliases, {linked} linked to their BSUID's history",
                settings.table
            );
            Ok(())
        }
        Command::Dlq(DlqCommand::Redrive { queue, max }) => {
            let client = aws_sdk_sqs::Client::new(&aws);
            match queue {
                QueueName::Outbound => {
                    let queues = Queues {
                        queue_url: env.required("OUTBOUND_QUEUE_URL")?.to_owned(),
                        dlq_url: env.required("OUTBOUND_DLQ_URL")?.to_owned(),
                    };
                    let store =
                        DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &settings.table);
                    let report = redrive::outbound(&client, &store, &queues, max).await?;
                    for e in &report.entries {
                        let id = e.send_id.as_deref().unwrap_or(&e.dlq_message_id);
                        let reason = e.reason.as_deref().unwrap_or("-");
                        let what = match &e.outcome {
                            Outcome::Moved { dlq_deleted: true } => "moved".to_owned(),
                            Outcome::Moved { dlq_deleted: false } => {
                                "moved (its DLQ copy could not be deleted)".to_owned()
                            }
                            Outcome::AlreadySettled { state } => {
                                format!("already settled ({state}), dropped from the DLQ")
                            }
                            Outcome::Failed { why } => format!("failed: {why}"),
                        };
                        println!("{id}  {what}  [reason: {reason}]");
                    }
                    println!(
                        "outbound DLQ: {} moved, {} already settled, {} failed",
                        report.moved(),
                        report.already_settled(),
                        report.failed()
                    );
                    if report.failed() > 0 {
                        return Err(CliError::Incomplete {
                            failed: report.failed(),
                            total: report.entries.len(),
                        });
                    }
                    Ok(())
                }
                QueueName::Inbound => {
                    let queues = Queues {
                        queue_url: env.required("INBOUND_QUEUE_URL")?.to_owned(),
                        dlq_url: env.required("INBOUND_DLQ_URL")?.to_owned(),
                    };
                    let report = match redrive::inbound(&client, &queues, max).await {
                        Ok(r) => r,
                        Err(CliError::InboundRedrive(e)) => {
                            print_inbound(&e.report);
                            return Err(CliError::InboundRedrive(e));
                        }
                        Err(e) => return Err(e),
                    };
                    print_inbound(&report);
                    Ok(())
                }
            }
        }
    }
}

fn print_inbound(report: &wa_sqs::RedriveReport) {
    for m in &report.moved {
        let reason = m.reason.as_deref().unwrap_or("-");
        let note = if report.not_deleted.contains(&m.dlq_message_id) {
            " (its DLQ copy could not be deleted)"
        } else {
            ""
        };
        println!("{}  moved{note}  [reason: {reason}]", m.dlq_message_id);
    }
    println!(
        "inbound DLQ: {} moved, {} not deleted from the DLQ",
        report.moved.len(),
        report.not_deleted.len()
    );
}

async fn run_templates(api: &Api, command: TemplatesCommand) -> Result<(), CliError> {
    match command {
        TemplatesCommand::Sync { waba } => {
            let r = templates::sync(api, &waba).await?;
            println!(
                "account {waba}: {} templates listed in {} pages, {} no longer listed (marked DELETED), {} entries skipped",
                r.listed, r.pages, r.deleted, r.skipped
            );
        }
        TemplatesCommand::List { waba } => {
            let l = templates::list(api, &waba).await?;
            for t in &l.templates {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    t.name,
                    t.language,
                    t.status,
                    t.category,
                    t.quality.as_deref().unwrap_or("-")
                );
            }
            match l.synced_at {
                Some(at) => eprintln!("{} templates; last synced {at}", l.templates.len()),
                None => eprintln!(
                    "{} templates; never synced in full, so template sends are not checked yet (run `ventana templates sync --waba {waba}`)",
                    l.templates.len()
                ),
            }
        }
    }
    Ok(())
}

async fn run_broadcast(api: &Api, command: BroadcastCommand) -> Result<(), CliError> {
    match command {
        BroadcastCommand::Create(a) => {
            let file = std::fs::File::open(&a.csv).map_err(|source| CliError::CsvOpen {
                path: a.csv.clone(),
                source,
            })?;
            let opts = broadcast::CreateOptions {
                phone_number_id: a.number,
                template: a.template,
                language: a.language,
                release: a.release_percent.zip(a.every),
                require_opt_in: a.require_opt_in,
            };
            let inline = if a.upload {
                None
            } else {
                match broadcast::prepare(file, &a.csv, &opts) {
                    Ok(p) => Some(p),
                    Err(CliError::TooLarge { .. } | CliError::TooManyRecipients { .. }) => {
                        eprintln!("the list is over the inline limit: uploading it");
                        None
                    }
                    Err(e) => return Err(e),
                }
            };
            // A list with unusable rows goes by upload when it can, so that the broadcast's
            // ledger has every row (those as skipped_invalid, naming the line): inline, only
            // the usable rows travel.
            let mut upload = None;
            if let Some(p) = inline.as_ref().filter(|p| p.bad_count > 0) {
                match ventana::upload::request_upload(api, &opts.phone_number_id).await {
                    Ok(u) => {
                        eprintln!(
                            "{} rows of the list are unusable: uploading it, so that the broadcast's ledger records them",
                            p.bad_count
                        );
                        upload = Some(u);
                    }
                    Err(e) => eprintln!(
                        "cannot upload the list ({e}): sending its usable rows inline; the broadcast's ledger will not have the {} unusable ones",
                        p.bad_count
                    ),
                }
            }
            let id = match inline.filter(|_| upload.is_none()) {
                None => upload_and_create(api, &a.csv, &opts, upload).await?,
                Some(prepared) => {
                    for b in &prepared.bad {
                        eprintln!("{}:{}: {} (not sent)", a.csv.display(), b.line, b.problem);
                    }
                    if prepared.bad_count > prepared.bad.len() {
                        eprintln!("… and {} more", prepared.bad_count - prepared.bad.len());
                    }
                    eprintln!(
                        "{} recipients to send, {} bad rows skipped",
                        prepared.recipients, prepared.bad_count
                    );
                    broadcast::create(api, &prepared).await?
                }
            };
            println!("{id}");
            if a.no_wait {
                return Ok(());
            }
            watch(api, &id).await
        }
        BroadcastCommand::Watch { id } => watch(api, &id).await,
        BroadcastCommand::Pause { id } => {
            let v = broadcast::set_paused(api, &id, true).await?;
            println!("broadcast {}: {}", v.id, v.progress_line());
            Ok(())
        }
        BroadcastCommand::Resume { id } => {
            let v = broadcast::set_paused(api, &id, false).await?;
            println!("broadcast {}: {}", v.id, v.progress_line());
            Ok(())
        }
        BroadcastCommand::Export { id, out } => {
            let rows = broadcast::export(api, &id, &out).await?;
            eprintln!("{rows} recipients written to {}", out.display());
            Ok(())
        }
    }
}

/// The upload path of `broadcast create`: checks the list, uploads it (to `upload`, or a URL
/// asked for now) with a byte progress bar (plain lines off a terminal), creates the
/// broadcast over it; its id.
async fn upload_and_create(
    api: &Api,
    csv: &std::path::Path,
    opts: &broadcast::CreateOptions,
    upload: Option<ventana::upload::Upload>,
) -> Result<String, CliError> {
    let file = std::fs::File::open(csv).map_err(|source| CliError::CsvOpen {
        path: csv.to_owned(),
        source,
    })?;
    let scan = ventana::upload::scan(std::io::BufReader::new(file), csv)?;
    for b in &scan.bad {
        // The problem names its line already.
        eprintln!("{}: {} (skipped as invalid)", csv.display(), b.problem);
    }
    if scan.bad_count > scan.bad.len() as u64 {
        eprintln!("… and {} more", scan.bad_count - scan.bad.len() as u64);
    }
    let upload = match upload {
        Some(u) => u,
        None => ventana::upload::request_upload(api, &opts.phone_number_id).await?,
    };
    let len = std::fs::metadata(csv).map(|m| m.len()).unwrap_or(0);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(len);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "uploading {bar:40} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let shown = bar.clone();
    let mut next_line = 0u64;
    let started = std::time::Instant::now();
    ventana::upload::put_file(&upload, csv, move |sent| match &shown {
        Some(bar) => bar.set_position(sent),
        None => {
            // One line per tenth of the file.
            if sent >= next_line || sent == len {
                eprintln!("uploaded {sent}/{len} bytes");
                next_line = sent + len.div_ceil(10).max(1);
            }
        }
    })
    .await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    eprintln!(
        "uploaded {len} bytes in {:.1} s; {} recipients, {} bad rows (skipped as invalid)",
        started.elapsed().as_secs_f64(),
        scan.recipients,
        scan.bad_count
    );
    ventana::upload::create_from_list(api, opts, &upload).await
}

/// Shows progress (a bar on a terminal, one line per change otherwise) until the broadcast
/// completes or Ctrl-C, then the report.
async fn watch(api: &Api, id: &str) -> Result<(), CliError> {
    let bar = std::io::stdout().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(0);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed_precise} {msg}")
        {
            bar.set_style(style);
        }
        bar
    });
    let mut last = String::new();
    let show = |v: &View| match &bar {
        Some(bar) => {
            bar.set_length(v.total());
            bar.set_position(v.settled());
            bar.set_message(v.progress_line());
        }
        None => {
            let line = v.progress_line();
            if line != last {
                println!("{line}");
                last = line;
            }
        }
    };
    let finished = tokio::select! {
        r = broadcast::watch(api, id, POLL, show) => Some(r?),
        _ = tokio::signal::ctrl_c() => None,
    };
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    match finished {
        Some(v) => print!("{}", broadcast::report(&v)),
        None => {
            let v = broadcast::view(api, id).await?;
            print!("{}", broadcast::report(&v));
            eprintln!(
                "stopped watching; the broadcast goes on (`ventana broadcast watch {id}` to follow it)"
            );
        }
    }
    Ok(())
}

//! What the handler tests share: the fixtures' number, clock and key, and a store set up
//! with them.

use wa_domain::auth::hash_key;
use wa_domain::customer::{CustomerKey, CustomerRef};
use wa_domain::outbound::accept::AcceptConfig;
use wa_domain::ports::{ApiKeyStore, InboundStore, KeyScope};
use wa_domain::testing::{InMemoryStore, RecordingOutbound};
use wa_domain::window::WindowUpdate;

use crate::handler::Deps;

/// The phone number id the `events/send-api` fixtures send from.
pub const PNID: &str = "106540352242922";
/// The fixtures' "now" (unix ms).
pub const NOW_MS: i64 = 1_795_428_000_000;

/// An `events/send-api/<case>.json` fixture.
pub fn fixture(case: &str) -> String {
    let path = format!(
        "{}/../../events/send-api/{case}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A store holding `test-api-key`, scoped to [`PNID`] only.
pub async fn keyed_store() -> InMemoryStore {
    let store = InMemoryStore::default();
    store
        .put_key(
            &hash_key("test-api-key"),
            &KeyScope::Numbers(vec![PNID.into()]),
            "t",
        )
        .await
        .unwrap();
    store
}

/// [`keyed_store`] and a customer (16505551234) who wrote an hour ago.
pub async fn deps() -> Deps<InMemoryStore, RecordingOutbound> {
    let store = keyed_store().await;
    let who = CustomerRef::new(None, Some("16505551234")).unwrap();
    store
        .advance_window(
            PNID,
            &CustomerKey::Phone("16505551234".into()),
            &who,
            &WindowUpdate::for_message(NOW_MS / 1000 - 3600, false),
            None,
        )
        .await
        .unwrap();
    deps_over(store)
}

/// Send-api's dependencies over `store`, with a recording queue and the default config.
pub fn deps_over(store: InMemoryStore) -> Deps<InMemoryStore, RecordingOutbound> {
    Deps {
        store,
        queue: RecordingOutbound::default(),
        config: AcceptConfig::default(),
    }
}

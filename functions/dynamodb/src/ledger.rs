//! A broadcast's ledger, packed: the entries of [`PAGE`] consecutive positions live in one
//! item (a few when the rows are large), not one item each.
//!
//! | what | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | ledger chunk | `BCASTL#{id}#{index / 1,000}` | `{first index:010}` | `entries` (S: JSON array of the entries, without the broadcast id), `count` (N), `ttl` (the latest of the entries') |
//!
//! Why packed: the ledger is written three times per recipient (imported, planned, settled)
//! and read twice. One item per entry cost a write unit per recipient each time and, on moto,
//! most of a 100,000-recipient broadcast's time; a chunk of 100 small entries is ~20 KB,
//! so ~0.2 write units per recipient per write, and a page is read with one small Query.
//!
//! Layout rules:
//! - positions are grouped in pages of [`PAGE`]; a chunk never spans two pages, so the
//!   chunks holding a page are the items of its partition with `sk` from the page's first
//!   position to its last;
//! - a page is cut into chunks greedily by the size of its rows (plus [`HEADROOM`] for what
//!   planning adds: outcome, send id, error), at most [`CHUNK_BUDGET`] bytes each, so a page
//!   of 64 KiB CSV records still fits DynamoDB's 400 KB item limit. Rows never change after
//!   the import, so a page's chunk boundaries change only when positions are added to it;
//! - a write reads the chunks of every page it touches (one Query per 1,000 positions),
//!   unless it gives every position of those pages (an import or a planned page: no read),
//!   merges the given entries in, writes the pages' chunks whole and then deletes chunks
//!   that are no longer boundaries (in practice: items of one entry each, written before
//!   the ledger was packed). If a crash leaves such a stale item behind, the reader takes a
//!   position from a chunk rather than from a single-entry item, and from the chunk with the
//!   largest first index when two chunks hold it (boundaries only ever appear to the right
//!   of the existing ones as a page fills in, so that is the newer cut).
//!
//! The planner is the only writer of a broadcast's ledger while it holds the job's version,
//! so the read-merge-write needs no condition (a re-done page writes the same values).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use serde::{Deserialize, Serialize};
use wa_domain::broadcast::{BroadcastId, LedgerEntry, Outcome, RecipientRow};
use wa_domain::outbound::{SendFailure, SendId};
use wa_domain::ports::StoreError;

use crate::DynamoStore;
use crate::attr::{Item, n, opt_s, req_s, unavailable};
use crate::broadcasts::{PUT_BATCH, corrupt, doc_error, encode_error, encoded};
use crate::keys::{SK, TTL, key};
use crate::reader::SortKeys;

/// Positions per page: the unit a write rewrites.
pub(crate) const PAGE: u64 = 100;
/// Positions per partition key: a big broadcast spreads its writes over many partitions
/// (DynamoDB allows 1,000 write units a second per partition), and a page's Query reads a
/// small item collection.
pub(crate) const SPLIT: u64 = 1_000;
/// Most row bytes (each row counted with [`HEADROOM`]) one chunk holds: with 100 entries of
/// the largest headroom it leaves more than half of DynamoDB's 400 KB item limit free.
const CHUNK_BUDGET: usize = 160 * 1024;
/// What planning may add to an entry beyond its row (outcome, send id, an error).
const HEADROOM: usize = 512;

const ENTRIES: &str = "entries";
const COUNT: &str = "count";
/// The attribute of a ledger item written one entry per item (before packing).
const SINGLE: &str = "doc";

const _: () = assert!(SPLIT.is_multiple_of(PAGE));

fn partition_pk(id: &BroadcastId, index: u64) -> String {
    format!("BCASTL#{id}#{}", index / SPLIT)
}

fn position_sk(index: u64) -> String {
    format!("{index:010}")
}

fn page_of(index: u64) -> u64 {
    index / PAGE
}

/// An entry as a chunk holds it (the broadcast id is the chunk's).
#[derive(Serialize)]
struct PackedRef<'a> {
    i: u64,
    row: &'a RecipientRow,
    o: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    s: Option<&'a SendId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<&'a SendFailure>,
    x: i64,
}

#[derive(Deserialize)]
struct Packed {
    i: u64,
    row: RecipientRow,
    o: Outcome,
    #[serde(default)]
    s: Option<SendId>,
    #[serde(default)]
    e: Option<SendFailure>,
    x: i64,
}

/// The entries of a ledger item (a chunk, or a single entry written before packing).
fn entries_of(id: &BroadcastId, item: &Item) -> Result<Vec<LedgerEntry>, StoreError> {
    let Some(doc) = opt_s(item, ENTRIES)? else {
        let single: LedgerEntry = serde_json::from_str(req_s(item, SINGLE)?).map_err(doc_error)?;
        return Ok(vec![single]);
    };
    let packed: Vec<Packed> = serde_json::from_str(doc).map_err(doc_error)?;
    Ok(packed
        .into_iter()
        .map(|p| LedgerEntry {
            broadcast_id: id.clone(),
            index: p.i,
            row: p.row,
            outcome: p.o,
            send_id: p.s,
            error: p.e,
            expires_at: p.x,
        })
        .collect())
}

/// The first index of a chunk, from its sort key.
fn first_of(item: &Item) -> Result<u64, StoreError> {
    req_s(item, SK)?
        .parse()
        .map_err(|_| corrupt("ledger sort key is not a position"))
}

/// Cuts the entries of one page (in position order) into chunks by the size of their rows.
fn chunks(page: &[&LedgerEntry]) -> Result<Vec<Vec<usize>>, StoreError> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut used = 0usize;
    for (k, e) in page.iter().enumerate() {
        let size = serde_json::to_string(&e.row).map_err(encode_error)?.len() + HEADROOM;
        match out.last_mut() {
            Some(chunk) if used + size <= CHUNK_BUDGET => {
                chunk.push(k);
                used += size;
            }
            _ => {
                out.push(vec![k]);
                used = size;
            }
        }
    }
    Ok(out)
}

fn chunk_item(pk: &str, entries: &[&LedgerEntry]) -> Result<Item, StoreError> {
    let first = entries
        .first()
        .map(|e| e.index)
        .ok_or_else(|| corrupt("an empty ledger chunk"))?;
    let packed: Vec<PackedRef<'_>> = entries
        .iter()
        .map(|e| PackedRef {
            i: e.index,
            row: &e.row,
            o: e.outcome,
            s: e.send_id.as_ref(),
            e: e.error.as_ref(),
            x: e.expires_at,
        })
        .collect();
    let expires = entries.iter().map(|e| e.expires_at).max().unwrap_or(0);
    let mut item = key(pk.to_owned(), &position_sk(first));
    item.extend([
        (ENTRIES.to_owned(), encoded(serde_json::to_string(&packed))?),
        (COUNT.to_owned(), n(entries.len() as i64)),
        (TTL.to_owned(), n(expires)),
    ]);
    Ok(item)
}

/// What a partition's range holds: position → entry, and the first index of each item.
#[derive(Default)]
struct Stored {
    entries: BTreeMap<u64, LedgerEntry>,
    /// Positions taken from single-entry items (a chunk's copy overrules them).
    singles: BTreeSet<u64>,
    chunk_starts: BTreeSet<u64>,
}

impl Stored {
    /// Adds an item's entries (items come in sort-key order).
    fn add(&mut self, id: &BroadcastId, item: &Item) -> Result<(), StoreError> {
        self.chunk_starts.insert(first_of(item)?);
        let packed = item.contains_key(ENTRIES);
        for e in entries_of(id, item)? {
            if packed {
                self.singles.remove(&e.index);
            } else if self.entries.contains_key(&e.index) && !self.singles.contains(&e.index) {
                continue;
            } else {
                self.singles.insert(e.index);
            }
            self.entries.insert(e.index, e);
        }
        Ok(())
    }
}

impl DynamoStore {
    /// The items of partition `pk` whose first index is in `from..=to`, merged by position
    /// (see [`Stored::add`] for which copy of a position wins).
    async fn ledger_range(
        &self,
        id: &BroadcastId,
        pk: &str,
        from: u64,
        to: u64,
    ) -> Result<Stored, StoreError> {
        let (from, to) = (position_sk(from), position_sk(to));
        let mut stored = Stored::default();
        for item in self
            .query_partition(pk, SortKeys::Between(&from, &to), true)
            .await?
        {
            stored.add(id, &item)?;
        }
        Ok(stored)
    }

    /// Up to `limit` entries from position `from` on, in position order (see
    /// `BroadcastStore::entries`).
    pub(crate) async fn ledger_entries(
        &self,
        id: &BroadcastId,
        from: u64,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // A limit past the end of the positions reads until the entries stop.
        let last = from.saturating_add(u64::try_from(limit - 1).unwrap_or(u64::MAX));
        let mut out = Vec::with_capacity(limit.min(10 * PAGE as usize));
        let mut at = from;
        loop {
            let partition_end = (at / SPLIT + 1) * SPLIT;
            let to = last.min(partition_end - 1);
            let first_page = page_of(at) * PAGE;
            let stored = self
                .ledger_range(id, &partition_pk(id, at), first_page, to)
                .await?;
            out.extend(
                stored
                    .entries
                    .into_values()
                    .filter(|e| e.index >= at && e.index <= to),
            );
            // The next partition, only if the entries run on to this one's end.
            let runs_on = out.last().is_some_and(|e| e.index + 1 == partition_end);
            if to == last || !runs_on {
                return Ok(out);
            }
            at = partition_end;
        }
    }

    /// Writes ledger entries: each page they touch is read, merged and written whole.
    pub(crate) async fn put_ledger_entries(
        &self,
        entries: &[LedgerEntry],
    ) -> Result<(), StoreError> {
        // (broadcast, partition) → the entries given for it.
        let mut groups: BTreeMap<(String, u64), Vec<&LedgerEntry>> = BTreeMap::new();
        for e in entries {
            groups
                .entry((e.broadcast_id.as_str().to_owned(), e.index / SPLIT))
                .or_default()
                .push(e);
        }
        // One after the other: a call spans one partition, rarely two.
        for given in groups.into_values() {
            self.put_partition(given).await?;
        }
        Ok(())
    }

    /// [`Self::put_ledger_entries`] for the entries of one partition of one broadcast.
    async fn put_partition(&self, given: Vec<&LedgerEntry>) -> Result<(), StoreError> {
        let Some(first) = given.first() else {
            return Ok(());
        };
        let id = first.broadcast_id.clone();
        let pk = partition_pk(&id, first.index);
        // page → the positions given in it
        let mut pages: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
        for e in &given {
            pages.entry(page_of(e.index)).or_default().insert(e.index);
        }
        let (Some((&lo, _)), Some((&hi, _))) = (pages.first_key_value(), pages.last_key_value())
        else {
            return Ok(());
        };
        // Pages given whole need nothing read: their cut depends on their rows alone, and it
        // starts a chunk wherever any earlier cut of them did (rows never change, and a page
        // only ever grows to the right), so every chunk of theirs is overwritten. Only items
        // written one entry each before packing may stay; readers overrule those.
        let whole = pages.values().all(|p| p.len() as u64 == PAGE);
        let mut stored = if whole {
            Stored::default()
        } else {
            self.ledger_range(&id, &pk, lo * PAGE, hi * PAGE + PAGE - 1)
                .await?
        };
        for e in given {
            stored.entries.insert(e.index, e.clone());
        }
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        for page in pages.into_keys() {
            let span = page * PAGE..page * PAGE + PAGE;
            let entries: Vec<&LedgerEntry> =
                stored.entries.range(span.clone()).map(|(_, e)| e).collect();
            let mut starts = BTreeSet::new();
            for chunk in chunks(&entries)? {
                let members: Vec<&LedgerEntry> = chunk.iter().map(|&k| entries[k]).collect();
                let item = chunk_item(&pk, &members)?;
                starts.insert(members.first().map_or(0, |e| e.index));
                puts.push(item);
            }
            for stale in stored
                .chunk_starts
                .range(span)
                .filter(|s| !starts.contains(s))
            {
                deletes.push(write_delete(&pk, *stale)?);
            }
        }
        // Deletes only once every new chunk is written: a crash in between leaves a stale
        // chunk that readers overrule, never a hole.
        self.batch_put_all(puts).await?;
        for requests in deletes.chunks(PUT_BATCH) {
            self.batch_put(requests.to_vec()).await?;
        }
        Ok(())
    }
}

fn write_delete(pk: &str, first: u64) -> Result<WriteRequest, StoreError> {
    let k: Item = key(pk.to_owned(), &position_sk(first));
    Ok(WriteRequest::builder()
        .delete_request(
            DeleteRequest::builder()
                .set_key(Some(k))
                .build()
                .map_err(unavailable)?,
        )
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, row_bytes: usize) -> LedgerEntry {
        LedgerEntry::pending(
            &BroadcastId::new(1_700_000_000_000, [7; 10]),
            index,
            RecipientRow {
                to: Some("15551234567".into()),
                components: serde_json::json!([{"type": "body", "parameters": [
                    {"type": "text", "text": "x".repeat(row_bytes)}]}]),
                ..RecipientRow::default()
            },
            1_800_000_000,
        )
    }

    #[test]
    fn a_page_of_small_rows_is_one_chunk() {
        let es: Vec<_> = (0..PAGE).map(|i| entry(i, 40)).collect();
        let refs: Vec<&LedgerEntry> = es.iter().collect();
        assert_eq!(chunks(&refs).unwrap().len(), 1);
    }

    #[test]
    fn large_rows_are_cut_so_every_chunk_fits_an_item() {
        // 64 KiB CSV records: the largest a row can be.
        let es: Vec<_> = (0..PAGE).map(|i| entry(i, 64 * 1024)).collect();
        let refs: Vec<&LedgerEntry> = es.iter().collect();
        let cut = chunks(&refs).unwrap();
        assert!(cut.len() > 1);
        assert_eq!(cut.iter().map(Vec::len).sum::<usize>(), PAGE as usize);
        for c in &cut {
            let members: Vec<&LedgerEntry> = c.iter().map(|&k| refs[k]).collect();
            let item = chunk_item("pk", &members).unwrap();
            let size: usize = item
                .iter()
                .map(|(k, v)| k.len() + v.as_s().map_or(16, String::len))
                .sum();
            assert!(size < 400_000, "a chunk of {size} bytes");
        }
    }

    #[test]
    fn boundaries_only_move_right_as_a_page_fills_in() {
        let es: Vec<_> = (0..PAGE)
            .map(|i| entry(i, 20_000 + 97 * i as usize))
            .collect();
        let starts = |n: usize| -> Vec<u64> {
            let refs: Vec<&LedgerEntry> = es[..n].iter().collect();
            chunks(&refs)
                .unwrap()
                .iter()
                .map(|c| refs[c[0]].index)
                .collect()
        };
        let full = starts(PAGE as usize);
        for n in 1..PAGE as usize {
            let part = starts(n);
            assert_eq!(part[..], full[..part.len()], "prefix of {n}");
        }
    }

    #[test]
    fn a_chunk_reads_back_as_its_entries() {
        let mut es: Vec<_> = (10..13).map(|i| entry(i, 5)).collect();
        es[1].outcome = Outcome::Queued;
        es[1].send_id = Some(SendId::new(1_700_000_000_000, [1; 10]));
        es[2].outcome = Outcome::Failed;
        es[2].error = Some(SendFailure::new(131_026, "undeliverable"));
        let refs: Vec<&LedgerEntry> = es.iter().collect();
        let item = chunk_item("pk", &refs).unwrap();
        assert_eq!(first_of(&item).unwrap(), 10);
        let back = entries_of(&es[0].broadcast_id, &item).unwrap();
        assert_eq!(back, es);
        assert_eq!(
            item.get(TTL)
                .and_then(|v| v.as_n().ok())
                .map(String::as_str),
            Some("1800000000")
        );
    }
}

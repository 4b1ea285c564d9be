//! What prune does with each pack: a pure function of what it found.
//!
//! Deletion is two-phase. A pack with nothing that a snapshot needs is
//! first *marked* (the index records it with the time the mark became
//! durable); a later prune deletes it only when the mark is older than the
//! grace period, no lock taken before the mark was durable is still live,
//! and still nothing in it is needed. format-spec/format.md ("Pruning")
//! gives the argument. With `instant` (under an exclusive lock, so no other
//! process is running) what no snapshot needs is deleted at once.

use std::collections::HashMap;

use crate::format::BlobKind;
use crate::id::PackId;

/// How far the clocks of the hosts sharing a repository may disagree. A
/// mark's time is read after the index file carrying it became durable, so
/// every process that may have read the index without the mark took its
/// lock before that time by a correct clock; a live lock whose time is
/// before `mark + CLOCK_ALLOWANCE_NS` holds off the deletion.
pub const CLOCK_ALLOWANCE_NS: i64 = 3_600 * 1_000_000_000;

/// The `marked_ns` of a mark written before the time it became durable is
/// known (format-spec §9): it counts as marked for readers, but never as
/// old enough. A prune that finds one marks the pack again.
pub const MARK_PENDING_NS: i64 = i64::MAX;

/// What prune learned about one pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackFacts {
    pub id: PackId,
    /// Kind of the blobs it holds (packs hold one kind).
    pub kind: BlobKind,
    /// Size the index records, or the stored size of an unindexed pack.
    pub size: u64,
    /// Whether an index file lists it.
    pub indexed: bool,
    /// Whether the storage has it.
    pub stored: bool,
    /// Blobs it holds (as the index lists them).
    pub blobs: u64,
    /// Blobs in it that a snapshot needs and whose indexed copy is this one.
    pub used_blobs: u64,
    /// Sealed bytes of those blobs.
    pub used_bytes: u64,
    /// Sealed bytes of the other blobs (the header is neither).
    pub unused_bytes: u64,
    /// When an earlier prune marked it, if it did.
    pub marked_ns: Option<i64>,
    /// Until when the store's object lock keeps it from being deleted.
    pub locked_until_ns: Option<i64>,
}

/// How much unused space prune may leave in kept packs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MaxUnused {
    /// A share of the used bytes, in percent.
    Percent(f64),
    Bytes(u64),
    Unlimited,
}

impl MaxUnused {
    fn limit(self, used: u64) -> u64 {
        match self {
            Self::Percent(p) => (used as f64 * p / 100.0) as u64,
            Self::Bytes(b) => b,
            Self::Unlimited => u64::MAX,
        }
    }
}

/// Settings of a plan.
#[derive(Debug, Clone, Copy)]
pub struct PlanOptions {
    pub max_unused: MaxUnused,
    /// Most pack bytes to download for repacking.
    pub max_repack_bytes: Option<u64>,
    /// Packs smaller than this are combined, once those of a kind add up to
    /// at least `pack_size` (so a run never rewrites the same few small
    /// packs again and again).
    pub small_pack: u64,
    /// The repository's target pack size.
    pub pack_size: u64,
    /// How long a mark must stand before its pack may be deleted.
    pub grace_ns: i64,
    pub now_ns: i64,
    /// Delete what no snapshot needs now instead of marking it (only under
    /// an exclusive lock).
    pub instant: bool,
}

/// What to do with every pack.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Packs to mark now (unused, or repacked).
    pub mark: Vec<PackId>,
    /// Packs whose live blobs are copied into new packs (and which are then marked).
    pub repack: Vec<PackId>,
    /// Marked packs to delete now.
    pub delete: Vec<PackId>,
    /// Marked packs that must wait (grace period or an older live lock).
    pub wait: Vec<PackId>,
    /// Marked packs that a snapshot needs again: their mark is dropped.
    pub unmark: Vec<PackId>,
    /// Packs the index lists but the storage lacks, holding nothing needed:
    /// they leave the index.
    pub forget_missing: Vec<PackId>,
    /// Packs the index lists but the storage lacks, holding needed blobs.
    pub missing_needed: Vec<PackId>,
    pub stats: PlanStats,
}

/// Numbers for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PlanStats {
    pub packs: u64,
    pub bytes: u64,
    pub used_blobs: u64,
    pub used_bytes: u64,
    pub unused_bytes: u64,
    pub mark_packs: u64,
    pub mark_bytes: u64,
    pub repack_packs: u64,
    pub repack_bytes: u64,
    /// Live bytes that repacking copies.
    pub repack_used_bytes: u64,
    pub delete_packs: u64,
    pub delete_bytes: u64,
    pub wait_packs: u64,
    pub wait_bytes: u64,
    /// Of the waiting packs, those held by the store's object lock.
    pub wait_locked_packs: u64,
    pub unmark_packs: u64,
    /// Bytes left in packs that are neither marked nor deleted, after the plan.
    pub remaining_bytes: u64,
    /// Unused bytes left in those packs.
    pub remaining_unused_bytes: u64,
}

/// Decides what prune does. `lock_times` are the start times of the live
/// locks of other processes.
pub fn plan(packs: &[PackFacts], lock_times: &[i64], opts: &PlanOptions) -> Plan {
    let mut plan = Plan::default();
    let s = &mut plan.stats;
    // Live packs that stay unmarked after this run, by id.
    let mut kept: Vec<&PackFacts> = Vec::new();
    for p in packs {
        s.packs += 1;
        s.bytes += p.size;
        s.used_blobs += p.used_blobs;
        s.used_bytes += p.used_bytes;
        s.unused_bytes += p.unused_bytes;
        let needed = p.used_blobs > 0;
        if !p.stored {
            if p.indexed && needed {
                plan.missing_needed.push(p.id);
            } else if p.indexed {
                plan.forget_missing.push(p.id);
            }
            continue;
        }
        let marked = p.marked_ns.filter(|&m| m != MARK_PENDING_NS || needed);
        let locked = p.locked_until_ns.is_some_and(|until| until > opts.now_ns);
        if opts.instant && !needed && !locked {
            plan.delete.push(p.id);
            s.delete_packs += 1;
            s.delete_bytes += p.size;
            continue;
        }
        match (marked, needed) {
            (Some(_), true) => {
                plan.unmark.push(p.id);
                s.unmark_packs += 1;
                kept.push(p);
            }
            (Some(marked), false) => {
                let old_enough = opts.now_ns.saturating_sub(marked) >= opts.grace_ns;
                let visible = marked.saturating_add(CLOCK_ALLOWANCE_NS);
                let held = lock_times.iter().any(|&t| t < visible);
                if (opts.instant || (old_enough && !held)) && !locked {
                    plan.delete.push(p.id);
                    s.delete_packs += 1;
                    s.delete_bytes += p.size;
                } else {
                    plan.wait.push(p.id);
                    s.wait_packs += 1;
                    s.wait_bytes += p.size;
                    s.wait_locked_packs += u64::from(locked);
                }
            }
            (None, false) => {
                plan.mark.push(p.id);
                s.mark_packs += 1;
                s.mark_bytes += p.size;
            }
            (None, true) => kept.push(p),
        }
    }
    choose_repacks(&mut plan, &kept, opts);
    plan
}

/// Picks the packs to repack among the kept ones: the most wasteful first
/// until the unused space left is within the limit, then small packs.
fn choose_repacks(plan: &mut Plan, kept: &[&PackFacts], opts: &PlanOptions) {
    let used: u64 = kept.iter().map(|p| p.used_bytes).sum();
    let mut unused: u64 = kept.iter().map(|p| p.unused_bytes).sum();
    let limit = opts.max_unused.limit(used);
    let mut budget = opts.max_repack_bytes.unwrap_or(u64::MAX);
    let mut chosen: HashMap<PackId, ()> = HashMap::new();
    let mut candidates: Vec<&&PackFacts> = kept.iter().filter(|p| p.unused_bytes > 0).collect();
    // Largest share of unused space first; ties by id for a stable plan.
    candidates.sort_by(|a, b| {
        let ra = a.unused_bytes as f64 / a.size.max(1) as f64;
        let rb = b.unused_bytes as f64 / b.size.max(1) as f64;
        rb.total_cmp(&ra).then(a.id.cmp(&b.id))
    });
    for p in candidates {
        if unused <= limit {
            break;
        }
        if p.size > budget {
            continue;
        }
        budget -= p.size;
        unused -= p.unused_bytes;
        chosen.insert(p.id, ());
    }
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let small: Vec<&&PackFacts> = kept
            .iter()
            .filter(|p| p.kind == kind && p.size < opts.small_pack && !chosen.contains_key(&p.id))
            .collect();
        let total: u64 = small.iter().map(|p| p.size).sum();
        if small.len() < 2 || total < opts.pack_size {
            continue;
        }
        for p in small {
            if p.size > budget {
                continue;
            }
            budget -= p.size;
            chosen.insert(p.id, ());
        }
    }
    let s = &mut plan.stats;
    for p in kept {
        if chosen.contains_key(&p.id) {
            plan.repack.push(p.id);
            s.repack_packs += 1;
            s.repack_bytes += p.size;
            s.repack_used_bytes += p.used_bytes;
            let locked = p.locked_until_ns.is_some_and(|until| until > opts.now_ns);
            if opts.instant && !locked {
                plan.delete.push(p.id);
                s.delete_packs += 1;
                s.delete_bytes += p.size;
            } else {
                plan.mark.push(p.id);
                s.mark_packs += 1;
                s.mark_bytes += p.size;
            }
        } else {
            s.remaining_bytes += p.size;
            s.remaining_unused_bytes += p.unused_bytes;
        }
    }
    // Repacked blobs land in new packs of about their size.
    s.remaining_bytes += s.repack_used_bytes;
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600 * 1_000_000_000;

    fn pack(n: u8, size: u64, used: u64) -> PackFacts {
        PackFacts {
            id: PackId([n; 32]),
            kind: BlobKind::Data,
            size,
            indexed: true,
            stored: true,
            blobs: 10,
            used_blobs: u64::from(used > 0),
            used_bytes: used,
            unused_bytes: size - used,
            marked_ns: None,
            locked_until_ns: None,
        }
    }

    fn opts() -> PlanOptions {
        PlanOptions {
            max_unused: MaxUnused::Percent(5.0),
            max_repack_bytes: None,
            small_pack: 0,
            pack_size: 1000,
            grace_ns: 2 * HOUR,
            now_ns: 100 * HOUR,
            instant: false,
        }
    }

    fn id(n: u8) -> PackId {
        PackId([n; 32])
    }

    #[test]
    fn unused_packs_are_marked_not_deleted() {
        let p = plan(&[pack(1, 1000, 0), pack(2, 1000, 1000)], &[], &opts());
        assert_eq!(p.mark, vec![id(1)]);
        assert!(p.delete.is_empty() && p.repack.is_empty());
        assert_eq!(p.stats.remaining_bytes, 1000);
    }

    #[test]
    fn marked_packs_under_object_lock_wait_until_it_ends() {
        let mut locked = pack(1, 1000, 0);
        locked.marked_ns = Some(50 * HOUR);
        locked.locked_until_ns = Some(101 * HOUR);
        let mut expired = pack(2, 1000, 0);
        expired.marked_ns = Some(50 * HOUR);
        expired.locked_until_ns = Some(100 * HOUR);
        let p = plan(&[locked, expired], &[], &opts());
        assert_eq!(p.wait, vec![id(1)]);
        assert_eq!(p.delete, vec![id(2)]);
        assert_eq!(p.stats.wait_locked_packs, 1);
        // A lock does not keep an unused pack from being marked.
        let mut fresh = pack(3, 1000, 0);
        fresh.locked_until_ns = Some(200 * HOUR);
        assert_eq!(plan(&[fresh], &[], &opts()).mark, vec![id(3)]);
    }

    #[test]
    fn marked_packs_wait_for_the_grace_period() {
        let mut young = pack(1, 1000, 0);
        young.marked_ns = Some(99 * HOUR);
        let mut old = pack(2, 1000, 0);
        old.marked_ns = Some(90 * HOUR);
        let p = plan(&[young, old], &[], &opts());
        assert_eq!(p.wait, vec![id(1)]);
        assert_eq!(p.delete, vec![id(2)]);
        assert!(p.mark.is_empty());
    }

    #[test]
    fn a_lock_older_than_the_mark_holds_off_deletion() {
        let mut old = pack(2, 1000, 0);
        old.marked_ns = Some(90 * HOUR);
        // A backup running since before the mark may use the pack.
        assert_eq!(plan(&[old.clone()], &[89 * HOUR], &opts()).wait, vec![id(2)]);
        // One whose clock runs ahead of the marking prune's by less than
        // the allowance.
        assert_eq!(plan(&[old.clone()], &[90 * HOUR + HOUR / 2], &opts()).wait, vec![id(2)]);
        // One that started well after saw the mark.
        assert_eq!(plan(&[old], &[95 * HOUR], &opts()).delete, vec![id(2)]);
    }

    #[test]
    fn a_pending_mark_is_never_old_enough_and_is_marked_again() {
        let mut pending = pack(1, 1000, 0);
        pending.marked_ns = Some(MARK_PENDING_NS);
        let p = plan(&[pending.clone()], &[], &opts());
        assert_eq!(p.mark, vec![id(1)]);
        assert!(p.delete.is_empty() && p.wait.is_empty());
        pending.used_blobs = 1;
        pending.used_bytes = 10;
        assert_eq!(plan(&[pending], &[], &opts()).unmark, vec![id(1)]);
    }

    #[test]
    fn instant_deletes_what_is_unused_marked_or_repacked_unless_object_locked() {
        let mut o = opts();
        o.instant = true;
        o.max_unused = MaxUnused::Bytes(0);
        let mut young = pack(2, 1000, 0);
        young.marked_ns = Some(99 * HOUR);
        let mut locked = pack(3, 1000, 0);
        locked.locked_until_ns = Some(200 * HOUR);
        let packs = [
            pack(1, 1000, 0),
            young,
            locked,
            pack(4, 1500, 1000),
            pack(5, 1000, 1000),
        ];
        let p = plan(&packs, &[99 * HOUR], &o);
        assert_eq!(p.delete, vec![id(1), id(2), id(4)]);
        assert_eq!(p.repack, vec![id(4)]);
        assert_eq!(p.mark, vec![id(3)]);
        assert!(p.wait.is_empty());
    }

    #[test]
    fn a_needed_marked_pack_is_unmarked() {
        let mut p1 = pack(1, 1000, 1000);
        p1.marked_ns = Some(10 * HOUR);
        let p = plan(&[p1], &[], &opts());
        assert_eq!(p.unmark, vec![id(1)]);
        assert!(p.delete.is_empty() && p.mark.is_empty());
    }

    #[test]
    fn missing_packs_are_forgotten_or_reported() {
        let mut gone_unused = pack(1, 1000, 0);
        gone_unused.stored = false;
        let mut gone_used = pack(2, 1000, 10);
        gone_used.stored = false;
        let p = plan(&[gone_unused, gone_used], &[], &opts());
        assert_eq!(p.forget_missing, vec![id(1)]);
        assert_eq!(p.missing_needed, vec![id(2)]);
        assert!(p.mark.is_empty());
    }

    #[test]
    fn unindexed_packs_are_marked() {
        let mut stray = pack(1, 1000, 0);
        stray.indexed = false;
        assert_eq!(plan(&[stray], &[], &opts()).mark, vec![id(1)]);
    }

    #[test]
    fn repacks_the_most_wasteful_packs_until_within_the_limit() {
        // 3000 used, 5% = 150 unused allowed; unused: 500 + 100 + 40.
        let packs = [pack(1, 1500, 1000), pack(2, 1100, 1000), pack(3, 1040, 1000)];
        let p = plan(&packs, &[], &opts());
        assert_eq!(p.repack, vec![id(1)]);
        assert_eq!(p.mark, vec![id(1)]);
        assert_eq!(p.stats.repack_used_bytes, 1000);
        assert_eq!(p.stats.remaining_unused_bytes, 140);
        // 0%: everything with waste goes.
        let mut all = opts();
        all.max_unused = MaxUnused::Percent(0.0);
        assert_eq!(plan(&packs, &[], &all).repack, vec![id(1), id(2), id(3)]);
        // Unlimited: nothing.
        all.max_unused = MaxUnused::Unlimited;
        assert!(plan(&packs, &[], &all).repack.is_empty());
    }

    #[test]
    fn the_repack_budget_is_respected() {
        let packs = [pack(1, 1500, 1000), pack(2, 1100, 1000)];
        let mut o = opts();
        o.max_unused = MaxUnused::Bytes(0);
        o.max_repack_bytes = Some(1200);
        assert_eq!(plan(&packs, &[], &o).repack, vec![id(2)]);
    }

    #[test]
    fn small_packs_are_combined_once_they_fill_a_pack() {
        let mut o = opts();
        o.small_pack = 500;
        o.pack_size = 250;
        let one = [pack(1, 100, 100), pack(2, 5000, 5000)];
        assert!(plan(&one, &[], &o).repack.is_empty());
        let two = [pack(1, 100, 100), pack(2, 5000, 5000), pack(3, 200, 200)];
        assert_eq!(plan(&two, &[], &o).repack, vec![id(1), id(3)]);
        // Together less than a pack: left alone until more arrive.
        o.pack_size = 400;
        assert!(plan(&two, &[], &o).repack.is_empty());
        o.pack_size = 250;
        let mut tree = pack(3, 200, 200);
        tree.kind = BlobKind::Tree;
        let mixed = [pack(1, 100, 100), tree];
        assert!(plan(&mixed, &[], &o).repack.is_empty(), "kinds are not mixed");
    }
}

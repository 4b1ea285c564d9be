//! Bounds of a walk over a snapshot's trees.
//!
//! A repository may be hostile: trees are content addressed, so they cannot
//! form a cycle, but a chain of nested trees can be arbitrarily deep, and
//! a tree whose entries share one subtree, repeated level after level,
//! lists 2^n entries from n small trees. Every walker counts depth and
//! entries against a [`TreeBudget`] and stops with an error naming the
//! tree instead of overflowing its stack or running without end.

use super::{RepoError, Result};
use crate::format::limits;
use crate::id::TreeId;

/// Environment variable that sets the most entries a walk visits, for a
/// snapshot larger than the default allows (or to fail sooner).
pub const MAX_ENTRIES_ENV: &str = "CAIRN_MAX_TREE_ENTRIES";

/// How deep and how far a walk may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeLimits {
    /// Most components of a path inside a snapshot.
    pub max_depth: usize,
    /// Entries visited in one walk, a shared subtree once per visit.
    pub max_entries: u64,
}

impl Default for TreeLimits {
    /// The limits of format.md §14; `CAIRN_MAX_TREE_ENTRIES` may set the
    /// entries.
    fn default() -> Self {
        let max_entries = std::env::var(MAX_ENTRIES_ENV)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(limits::MAX_TREE_ENTRIES);
        Self {
            max_depth: limits::MAX_TREE_DEPTH,
            max_entries,
        }
    }
}

/// Counts one walk against its limits.
#[derive(Debug, Clone)]
pub struct TreeBudget {
    limits: TreeLimits,
    entries: u64,
}

impl Default for TreeBudget {
    fn default() -> Self {
        Self::new(TreeLimits::default())
    }
}

impl TreeBudget {
    pub fn new(limits: TreeLimits) -> Self {
        Self { limits, entries: 0 }
    }

    pub fn limits(&self) -> TreeLimits {
        self.limits
    }

    /// Entries counted so far.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// Counts the `n` entries of `tree`, which lie `depth` directories
    /// below the root (the root tree's own entries are at depth 1).
    pub fn visit(&mut self, tree: &TreeId, depth: usize, n: usize) -> Result<()> {
        check_depth_within(tree, depth, n, self.limits.max_depth)?;
        self.entries = self.entries.saturating_add(n as u64);
        if self.entries > self.limits.max_entries {
            return Err(RepoError::TooManyEntries {
                tree: *tree,
                max: self.limits.max_entries,
            });
        }
        Ok(())
    }
}

/// Checks the depth of a tree's `n` entries against the default limit, for
/// walks that read each distinct tree once (they need no entry count).
pub fn check_depth(tree: &TreeId, depth: usize, n: usize) -> Result<()> {
    check_depth_within(tree, depth, n, limits::MAX_TREE_DEPTH)
}

/// No path in a snapshot has more than `max` components: a tree with
/// entries may lie at most `max` deep. A walker reads a tree one level
/// deeper at most, and stops there, so recursion stays within `max + 1`.
fn check_depth_within(tree: &TreeId, depth: usize, n: usize, max: usize) -> Result<()> {
    if depth > max && n > 0 {
        return Err(RepoError::TreeTooDeep { tree: *tree, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_and_entries_are_bounded() {
        let t = TreeId([7; 32]);
        let mut b = TreeBudget::new(TreeLimits {
            max_depth: 3,
            max_entries: 10,
        });
        b.visit(&t, 4, 0).unwrap();
        b.visit(&t, 3, 4).unwrap();
        let deep = b.visit(&t, 4, 1).unwrap_err();
        assert!(matches!(deep, RepoError::TreeTooDeep { max: 3, .. }), "{deep}");
        assert!(deep.to_string().contains(&t.to_string()), "{deep}");
        b.visit(&t, 1, 6).unwrap();
        let many = b.visit(&t, 1, 1).unwrap_err();
        assert!(matches!(many, RepoError::TooManyEntries { max: 10, .. }), "{many}");
        assert!(check_depth(&t, limits::MAX_TREE_DEPTH + 1, 1).is_err());
        check_depth(&t, limits::MAX_TREE_DEPTH, 1).unwrap();
    }
}

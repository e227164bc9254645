//! Planning: which blocks of one tenant's signal are merged together.
//!
//! Size-tiered by time window, like Mimir's `block_ranges`: at the smallest
//! range (2h by default) every aligned window holding two or more blocks
//! that fit inside it is merged into one block; at each larger range (12h,
//! 24h) the blocks that fit a window are merged once the window is over
//! (the newest data is past its end), so the big blocks are written once.
//! A block that fits no window of any range (it spans the largest one) is
//! left alone.

use std::collections::BTreeMap;

use super::super::manifest::BlockMeta;

/// Blocks to merge into one.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Index into the block ranges.
    pub level: usize,
    /// Start of the aligned window, in the signal's time unit.
    pub window_start: i64,
    pub window_end: i64,
    /// In manifest order: the order they were published, oldest first.
    pub blocks: Vec<BlockMeta>,
}

/// Groups `blocks` (in manifest order) by the ranges (ascending, in the
/// signal's time unit).
/// No block is in two groups; a group has at most `max_blocks` blocks.
pub fn plan(blocks: &[BlockMeta], ranges: &[i64], max_blocks: usize) -> Vec<Group> {
    let Some(newest) = blocks.iter().map(|b| b.max_time).max() else {
        return Vec::new();
    };
    let max_blocks = max_blocks.max(2);
    let mut taken = vec![false; blocks.len()];
    let mut groups = Vec::new();
    for (level, &range) in ranges.iter().enumerate() {
        let mut windows: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, b) in blocks.iter().enumerate() {
            if taken[i] {
                continue;
            }
            let window = b.min_time.div_euclid(range);
            if b.max_time.div_euclid(range) == window {
                windows.entry(window).or_default().push(i);
            }
        }
        for (window, members) in windows {
            let start = window.saturating_mul(range);
            let end = start.saturating_add(range);
            if members.len() < 2 || (level > 0 && end > newest) {
                continue;
            }
            for chunk in members.chunks(max_blocks) {
                if chunk.len() < 2 {
                    continue;
                }
                for &i in chunk {
                    taken[i] = true;
                }
                groups.push(Group {
                    level,
                    window_start: start,
                    window_end: end,
                    blocks: chunk.iter().map(|&i| blocks[i].clone()).collect(),
                });
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            id: id.into(),
            min_time: min,
            max_time: max,
            rows: 1,
            bytes: 1,
            index_bytes: 1,
            created_at_ms: 0,
            resolution_ms: 0,
            edges_bytes: None,
            row_index_bytes: None,
        }
    }

    fn ids(g: &Group) -> Vec<&str> {
        g.blocks.iter().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn small_blocks_of_a_window_merge_first() {
        // Ranges 10 and 40: windows [0,10), [10,20), ...
        let blocks = vec![
            block("a", 0, 4),
            block("b", 5, 9),
            block("c", 3, 8),
            block("d", 12, 15),
            block("e", 8, 12), // spans two small windows
        ];
        let groups = plan(&blocks, &[10, 40], 10);
        assert_eq!(groups.len(), 1, "{groups:?}");
        assert_eq!(ids(&groups[0]), vec!["a", "b", "c"]);
        assert_eq!((groups[0].window_start, groups[0].window_end), (0, 10));
    }

    #[test]
    fn larger_windows_merge_only_once_they_are_over() {
        let blocks = vec![block("a", 0, 9), block("b", 10, 19), block("c", 20, 30)];
        // The 40-wide window [0,40) is still open: newest data is at 30.
        assert!(plan(&blocks, &[10, 40], 10).is_empty());
        let mut later = blocks.clone();
        later.push(block("d", 45, 46));
        let groups = plan(&later, &[10, 40], 10);
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].level, 1);
        assert_eq!(ids(&groups[0]), vec!["a", "b", "c"]);
    }

    #[test]
    fn groups_are_capped_and_negative_times_align() {
        let blocks: Vec<BlockMeta> = (0..5).map(|i| block(&format!("b{i}"), -9, -1)).collect();
        let groups = plan(&blocks, &[10], 2);
        assert_eq!(groups.len(), 2);
        assert_eq!(ids(&groups[0]), vec!["b0", "b1"]);
        assert_eq!(ids(&groups[1]), vec!["b2", "b3"]);
        assert_eq!(groups[0].window_start, -10);
        assert!(plan(&[block("x", 0, 100)], &[10, 40], 10).is_empty());
    }
}

//! Cutting jobs into `SendMessageBatch` calls.

use std::ops::Range;

/// SQS's limit on one message body (its attributes count too; these messages have none). SQS
/// has accepted up to 1 MiB since 2025, but 256 KiB is what the in-memory queue enforces too, so a
/// job that works on a laptop works in every region and through every SDK version.
pub const MAX_MESSAGE_BYTES: usize = crate::memory::MAX_JOB_BYTES;

/// Entries in one `SendMessageBatch` call.
pub const MAX_BATCH_ENTRIES: usize = 10;

/// The payload of one `SendMessageBatch` call: all its bodies together.
pub const MAX_BATCH_BYTES: usize = MAX_MESSAGE_BYTES;

/// Consecutive runs of `sizes` (bodies' lengths in bytes) that each fit one batch: at most
/// [`MAX_BATCH_ENTRIES`] bodies and [`MAX_BATCH_BYTES`] together. Every size must already be at
/// most [`MAX_MESSAGE_BYTES`], so each body fits at least a batch of its own.
pub fn batch_ranges(sizes: &[usize]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES || bytes + size > MAX_BATCH_BYTES;
        if full && i > start {
            ranges.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_jobs_make_no_batches() {
        assert!(batch_ranges(&[]).is_empty());
    }

    #[test]
    fn twenty_five_small_jobs_make_batches_of_ten_ten_and_five() {
        assert_eq!(batch_ranges(&[100; 25]), vec![0..10, 10..20, 20..25]);
    }

    #[test]
    fn a_batch_closes_before_its_bodies_would_pass_the_payload_limit() {
        let third = MAX_BATCH_BYTES / 3;
        assert_eq!(
            batch_ranges(&[third, third, third, third, 10]),
            vec![0..3, 3..5]
        );
    }

    #[test]
    fn a_job_of_the_largest_size_travels_alone() {
        assert_eq!(
            batch_ranges(&[1, MAX_MESSAGE_BYTES, 1]),
            vec![0..1, 1..2, 2..3]
        );
    }

    #[test]
    fn batches_cover_every_job_once_in_order_within_both_limits() {
        let sizes: Vec<usize> = (0..200)
            .map(|i| (i * 7919) % MAX_MESSAGE_BYTES + 1)
            .collect();
        let ranges = batch_ranges(&sizes);
        let covered: Vec<usize> = ranges.iter().cloned().flatten().collect();
        assert_eq!(covered, (0..sizes.len()).collect::<Vec<_>>());
        for range in ranges {
            assert!(range.len() <= MAX_BATCH_ENTRIES);
            assert!(sizes[range].iter().sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }
}

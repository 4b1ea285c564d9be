use std::collections::HashSet;
use std::io::{self, Read};

use bytes::Bytes;

use super::*;

/// Deterministic pseudo-random numbers (splitmix64).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 8);
        while out.len() < n {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(n);
        out
    }
}

pub(crate) fn gear(seed: u64) -> Box<[u64; 256]> {
    let mut rng = Rng(seed);
    let mut table = Box::new([0u64; 256]);
    for slot in table.iter_mut() {
        *slot = rng.next();
    }
    table
}

fn small_params() -> ChunkerParams {
    ChunkerParams {
        min_size: 4096,
        avg_size: 16384,
        max_size: 65536,
    }
}

fn chunker(seed: u64) -> Chunker {
    Chunker::new(gear(seed), small_params())
}

fn lengths(c: &Chunker, data: &[u8]) -> Vec<usize> {
    c.chunks(data).map(<[u8]>::len).collect()
}

/// The cut rule written as plainly as the spec states it.
fn reference_cut(gear: &[u64; 256], p: ChunkerParams, data: &[u8]) -> usize {
    let (min, avg, max) = (p.min_size as usize, p.avg_size as usize, p.max_size as usize);
    let bits = p.avg_size.ilog2();
    let mask_s = ((1u64 << (bits + 2)) - 1) << (64 - (bits + 2));
    let mask_l = ((1u64 << (bits - 2)) - 1) << (64 - (bits - 2));
    let mut h = 0u64;
    let mut i = min;
    while i < data.len().min(max) {
        h = (h << 1).wrapping_add(gear[data[i] as usize]);
        let mask = if i < avg { mask_s } else { mask_l };
        if h & mask == 0 {
            return i + 1;
        }
        i += 1;
    }
    data.len().min(max)
}

#[test]
fn masks_sit_in_the_top_bits() {
    let c = Chunker::new(gear(1), ChunkerParams::default());
    // avg 1 MiB: log2 = 20, so 22 and 18 one-bits.
    assert_eq!(c.mask_s, ((1u64 << 22) - 1) << 42);
    assert_eq!(c.mask_l, ((1u64 << 18) - 1) << 46);
    assert_eq!(top_bits(0), 0);
    assert_eq!(top_bits(64), u64::MAX);
}

#[test]
fn cut_agrees_with_the_plain_reference() {
    let mut rng = Rng(7);
    let data = rng.bytes(3 << 20);
    // Odd sizes too: the scan takes two bytes a step, and a range of odd
    // length ends with one byte alone.
    let sets = [
        (1u64, 1024u32, 4096u32, 16384u32),
        (2, 4096, 16384, 65536),
        (3, 16384, 65536, 262144),
        (4, 2048, 8192, 32768),
        (5, 1001, 4099, 16411),
        (6, 3, 8191, 9001),
    ];
    for (seed, min, avg, max) in sets {
        let params = ChunkerParams {
            min_size: min,
            avg_size: avg,
            max_size: max,
        };
        let table = gear(seed);
        let c = Chunker::new(table.clone(), params);
        let mut rest = &data[..];
        let mut count = 0;
        while !rest.is_empty() {
            let expected = reference_cut(&table, params, rest);
            assert_eq!(c.cut(rest, true), Some(expected), "seed {seed} chunk {count}");
            // A window that ends just before the cut holds none (of
            // either parity, as cuts fall after odd and even bytes).
            assert_eq!(c.cut(&rest[..expected - 1], false), None, "seed {seed} chunk {count}");
            rest = &rest[expected..];
            count += 1;
        }
        assert!(count > 10, "seed {seed}: only {count} chunks");
    }
}

#[test]
fn boundaries_are_deterministic() {
    let data = Rng(11).bytes(2 << 20);
    let a = lengths(&chunker(5), &data);
    let b = lengths(&chunker(5), &data);
    assert_eq!(a, b);
    assert!(a.len() > 20);
}

#[test]
fn chunks_respect_bounds_and_concatenate_to_the_input() {
    let c = chunker(9);
    let data = Rng(12).bytes((4 << 20) + 12345);
    let chunks: Vec<&[u8]> = c.chunks(&data).collect();
    let (last, body) = chunks.split_last().unwrap();
    for chunk in body {
        assert!(chunk.len() >= 4096 && chunk.len() <= 65536, "length {}", chunk.len());
    }
    assert!(!last.is_empty() && last.len() <= 65536);
    assert_eq!(chunks.concat(), data);
}

#[test]
fn cut_handles_short_and_empty_input() {
    let c = chunker(1);
    assert_eq!(c.cut(&[], true), None);
    assert_eq!(c.cut(&[], false), None);
    let short = Rng(3).bytes(4096);
    assert_eq!(c.cut(&short, false), None);
    assert_eq!(c.cut(&short, true), Some(4096));
    assert_eq!(c.cut(&short[..10], true), Some(10));
}

#[test]
fn without_a_hit_the_cut_is_at_max_size() {
    // A top bit in every gear entry keeps the top bit of h set: no hit ever.
    let c = Chunker::new(Box::new([1u64 << 63; 256]), small_params());
    let data = vec![0u8; 100_000];
    assert_eq!(c.cut(&data, false), Some(65536));
    assert_eq!(c.cut(&data, true), Some(65536));
    assert_eq!(c.cut(&data[..65535], false), None);
    assert_eq!(c.cut(&data[..65535], true), Some(65535));
}

#[test]
fn bytes_before_min_size_are_not_hashed() {
    // A zero table hits on the first hashed byte, which is at min_size.
    let c = Chunker::new(Box::new([0u64; 256]), small_params());
    let data = vec![0xAAu8; 100_000];
    assert_eq!(c.cut(&data, false), Some(4097));
}

#[test]
fn inserting_at_the_front_keeps_most_chunks() {
    let c = chunker(21);
    let data = Rng(22).bytes(4 << 20);
    let ids = |d: &[u8]| -> HashSet<[u8; 32]> { c.chunks(d).map(|ch| *blake3::hash(ch).as_bytes()).collect() };
    let before = ids(&data);
    let mut shifted = b"a few new bytes at the front".to_vec();
    shifted.extend_from_slice(&data);
    let after = ids(&shifted);
    let kept = before.intersection(&after).count();
    assert!(before.len() > 50);
    assert!(
        kept + 3 >= before.len(),
        "only {kept} of {} chunks survived an insertion",
        before.len()
    );
}

#[test]
fn different_gear_tables_give_different_boundaries() {
    let data = Rng(31).bytes(2 << 20);
    let a = lengths(&chunker(1), &data);
    let b = lengths(&chunker(2), &data);
    assert_ne!(a, b);
    let first_a: HashSet<usize> = a.iter().scan(0, |s, n| Some(std::mem::replace(s, *s + n))).collect();
    let first_b: HashSet<usize> = b.iter().scan(0, |s, n| Some(std::mem::replace(s, *s + n))).collect();
    let shared = first_a.intersection(&first_b).count();
    assert!(
        shared * 4 < first_a.len(),
        "{shared} of {} boundaries shared",
        first_a.len()
    );
}

#[test]
fn average_chunk_size_is_near_the_target() {
    let c = Chunker::new(gear(41), ChunkerParams::from_avg(8192).unwrap());
    let data = Rng(42).bytes(8 << 20);
    let n = c.chunks(&data).count();
    let mean = data.len() / n;
    assert!((4096..=16384).contains(&mean), "mean chunk size {mean}");
}

/// A reader that hands out at most a few bytes per call and is interrupted
/// now and then, counting what it hands out.
struct Trickle<'a> {
    data: &'a [u8],
    pos: usize,
    calls: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(7) {
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        let step = 1 + self.calls % 5000;
        let n = step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn reader_with_tiny_reads_yields_the_same_chunks_as_cut() {
    let c = chunker(51);
    let data = Rng(52).bytes((3 << 20) + 777);
    let expected: Vec<&[u8]> = c.chunks(&data).collect();
    let source = Trickle {
        data: &data,
        pos: 0,
        calls: 0,
    };
    // A small buffer forces many refills and tail carries.
    let mut reader = ChunkReader::with_buffer_size(c.clone(), source, 0);
    let mut got = Vec::new();
    while let Some(chunk) = reader.next_chunk().unwrap() {
        got.push(chunk);
    }
    assert_eq!(reader.bytes_read(), data.len() as u64);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(&g[..], *e);
    }
    let source = reader.into_inner();
    assert_eq!(source.pos, data.len(), "every byte read exactly once");
}

#[test]
fn reader_on_empty_and_exact_inputs() {
    let c = chunker(61);
    let mut empty = ChunkReader::new(c.clone(), io::empty());
    assert!(empty.next_chunk().unwrap().is_none());
    assert!(empty.next_chunk().unwrap().is_none());
    assert_eq!(empty.bytes_read(), 0);

    let data = Rng(62).bytes(5 << 20);
    let chunks: Vec<Bytes> = ChunkReader::new(c.clone(), &data[..])
        .collect::<io::Result<_>>()
        .unwrap();
    let expected = lengths(&c, &data);
    assert_eq!(chunks.iter().map(Bytes::len).collect::<Vec<_>>(), expected);
}

struct Failing {
    left: usize,
}

impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Err(io::Error::other("disk on fire"));
        }
        let n = buf.len().min(self.left);
        buf[..n].fill(1);
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn reader_passes_source_errors_on() {
    let mut reader = ChunkReader::new(chunker(71), Failing { left: 1000 });
    let err = reader.next_chunk().unwrap_err();
    assert_eq!(err.to_string(), "disk on fire");
    assert_eq!(reader.bytes_read(), 1000);
}

#[test]
fn reader_reuses_its_buffer_once_chunks_are_dropped() {
    let c = chunker(81);
    let data = Rng(82).bytes(2 << 20);
    let mut reader = ChunkReader::with_buffer_size(c, &data[..], 0);
    let capacity = 65536;
    let (mut lowest, mut highest, mut total) = (usize::MAX, 0usize, 0usize);
    while let Some(chunk) = reader.next_chunk().unwrap() {
        let start = chunk.as_ptr() as usize;
        lowest = lowest.min(start);
        highest = highest.max(start + chunk.len());
        total += chunk.len();
    }
    assert_eq!(total, data.len());
    // Thirty-two fills, all in one allocation.
    assert!(
        highest - lowest <= capacity,
        "chunks spread over {} bytes",
        highest - lowest
    );
}

#[test]
fn a_reused_reader_buffer_never_grows_past_its_size() {
    // Chunks dropped before every refill, as the backup does; chunks of
    // half the buffer on average, so tails are often longer than the bytes
    // cut before them. The buffer must keep its size.
    let params = ChunkerParams {
        min_size: 16384,
        avg_size: 32768,
        max_size: 65536,
    };
    let c = Chunker::new(gear(91), params);
    let size = params.max_size as usize;
    for seed in 0..8 {
        let data = Rng(92 + seed).bytes(3 << 20);
        let mut reader = ChunkReader::with_buffer_size(c.clone(), &data[..], 0);
        let mut total = 0;
        loop {
            while let Some(chunk) = reader.next_buffered() {
                total += chunk.len();
            }
            if !reader.fill_more().unwrap() {
                break;
            }
            let held = reader.buffer_capacity();
            assert!(
                held <= size,
                "seed {seed}: the buffer grew to {held} bytes (size {size})"
            );
        }
        assert_eq!(total, data.len());
    }
}

//! Chunk boundaries. Placeholder: fixed-size chunks of the configured average size,
//! aligned to file offsets, until the streaming UltraCDC chunker replaces it.

/// Cuts file ranges into chunks.
#[derive(Debug, Clone, Copy)]
pub struct Chunker {
    size: u64,
}

impl Chunker {
    /// A fixed-size chunker of `size` bytes (at least 1).
    pub fn fixed(size: u32) -> Chunker {
        Chunker {
            size: u64::from(size.max(1)),
        }
    }

    /// The largest chunk this chunker produces; readers look back this far for the
    /// extent that covers an offset.
    pub fn max_chunk_len(&self) -> u64 {
        self.size
    }

    /// Length of the first chunk of `data` (which starts at a chunk boundary); `None`
    /// when more bytes are needed to decide.
    pub fn cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        let size = self.size as usize;
        if data.len() >= size {
            Some(size)
        } else if eof {
            Some(data.len())
        } else {
            None
        }
    }

    /// The chunk-aligned start of the chunk containing `offset`.
    pub fn align_down(&self, offset: u64) -> u64 {
        offset - offset % self.size
    }

    /// The chunks `[start, end)` covering `[from, to)` of a file of `file_size` bytes, in
    /// order; the last chunk ends at `file_size` if the range reaches it.
    pub fn chunks_covering(&self, from: u64, to: u64, file_size: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut s = self.align_down(from);
        let to = to.min(file_size);
        while s < to {
            let e = (s + self.size).min(file_size);
            out.push((s, e));
            s = e;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covering_chunks_are_aligned_and_end_at_eof() {
        let c = Chunker::fixed(100);
        assert_eq!(
            c.chunks_covering(150, 260, 1000),
            vec![(100, 200), (200, 300)]
        );
        assert_eq!(
            c.chunks_covering(150, 260, 250),
            vec![(100, 200), (200, 250)]
        );
        assert_eq!(c.chunks_covering(0, 0, 10), vec![]);
        assert_eq!(c.chunks_covering(5, 6, 6), vec![(0, 6)]);
    }
}

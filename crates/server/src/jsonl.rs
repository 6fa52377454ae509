//! Reading back the JSON-lines files a server keeps: the queue's outcome logs, the record of
//! accepted MTS identifiers and the event log. Line by line and each line capped, so that a
//! damaged file (a torn append, garbage left by a crash, octets that are not UTF-8, a file
//! that is not ours) costs neither unbounded memory nor the lines after the damage.

use std::io::{self, BufRead};

/// Longest line read back, octets: above every line a server writes (the longest is a line
/// of the record of accepted MTS identifiers: at most 1024 recipients of at most 2048
/// characters each, `mtalab_p1::limits::MAX_MNEMONIC_LEN`, each character at most six
/// octets once escaped, under 13 MiB).
pub const MAX_LINE: usize = 16 << 20;

/// Calls `f` with each line of `r`, without its `\n`, that holds at most `max` octets. A
/// last line without `\n` counts (an append torn by a crash: its JSON does not parse and
/// the caller drops it). Longer lines are skipped without being kept in memory; their number
/// is returned.
///
/// # Errors
/// An I/O error of `r` (what was read before it has been given to `f`).
pub fn for_each_line<R: BufRead>(mut r: R, max: usize, mut f: impl FnMut(&[u8])) -> io::Result<usize> {
    let mut line = Vec::new();
    let mut too_long = false;
    let mut skipped = 0;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            if too_long {
                skipped += 1;
            } else if !line.is_empty() {
                f(&line);
            }
            return Ok(skipped);
        }
        let newline = memchr::memchr(b'\n', buf);
        let part = &buf[..newline.unwrap_or(buf.len())];
        if !too_long {
            if line.len() + part.len() > max {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(part);
            }
        }
        let used = newline.map_or(buf.len(), |i| i + 1);
        r.consume(used);
        if newline.is_some() {
            if too_long {
                skipped += 1;
            } else {
                f(&line);
            }
            too_long = false;
            line.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize, buffer: usize) -> (Vec<Vec<u8>>, usize) {
        let mut out = Vec::new();
        let skipped = for_each_line(io::BufReader::with_capacity(buffer, input), max, |l| out.push(l.to_vec())).unwrap();
        (out, skipped)
    }

    #[test]
    fn lines_over_the_cap_are_skipped_and_the_rest_read() {
        let input = b"{\"a\":1}\n0123456789\n\n\xff\xfe\n{\"b\":2}\ntorn";
        for buffer in [1, 3, 8, 64] {
            let (out, skipped) = lines(input, 8, buffer);
            let want: Vec<&[u8]> = vec![b"{\"a\":1}", b"", b"\xff\xfe", b"{\"b\":2}", b"torn"];
            assert_eq!(out, want, "buffer {buffer}");
            assert_eq!(skipped, 1, "buffer {buffer}");
        }
        assert_eq!(lines(b"0123456789", 8, 4), (vec![], 1));
        assert_eq!(lines(b"", 8, 4), (vec![], 0));
    }

    proptest::proptest! {
        /// Whatever the buffer size, the lines given are those of `split` no longer than the
        /// cap, and the count is of the others.
        #[test]
        fn lines_are_those_of_split(input in proptest::collection::vec(proptest::sample::select(vec![b'a', b'b', b'\n', 0xff]), 0..200), max in 0usize..12, buffer in 1usize..16) {
            let mut parts: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
            if parts.last().is_some_and(|p| p.is_empty()) {
                parts.pop();
            }
            let want: Vec<Vec<u8>> = parts.iter().filter(|p| p.len() <= max).map(|p| p.to_vec()).collect();
            let too_long = parts.iter().filter(|p| p.len() > max).count();
            proptest::prop_assert_eq!(lines(&input, max, buffer), (want, too_long));
        }
    }
}

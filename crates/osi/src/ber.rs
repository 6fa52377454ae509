//! BER plumbing shared by presentation, ACSE and RTSE (X.690 §8).
//!
//! The ASN.1 structures themselves are `rasn` types; this module adds what the stack needs
//! around them: a structural pre-scan that bounds nesting depth (definite and indefinite
//! lengths, X.690 §8.1.3), whole-buffer decoding that rejects trailing octets, and a peek
//! at the outermost identifier.

use rasn::{Decode, Encode};

/// Maximum nesting depth of constructed encodings accepted anywhere in the stack.
///
/// The deepest structure the stack parses (CP-type → PDV-list → AARQ → EXTERNAL → RTORQ →
/// open → MTA bind argument) nests about 20 levels; 64 leaves room for peers' extensions.
pub const MAX_DEPTH: usize = 64;

/// Errors of the BER plumbing; each layer wraps it in its own error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BerError {
    /// The encoding ends inside an identifier, length or contents.
    #[error("truncated ber encoding at offset {0}")]
    Truncated(usize),
    /// Identifier octets for a tag number beyond `u32`, or a length of more than 4 octets.
    #[error("unsupported ber identifier or length at offset {0}")]
    Unsupported(usize),
    /// Constructed values nest deeper than [`MAX_DEPTH`].
    #[error("ber nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    /// An indefinite length on a primitive encoding (X.690 §8.1.3.2 a).
    #[error("indefinite length on a primitive value at offset {0}")]
    IndefinitePrimitive(usize),
    /// Octets follow the value inside its enclosing length.
    #[error("{0} trailing octets after the value")]
    Trailing(usize),
    /// The structure does not match the ASN.1 type (the decoder's message).
    #[error("{0}")]
    Structure(String),
}

/// Class of a BER tag (X.690 §8.1.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Universal.
    Universal,
    /// Application.
    Application,
    /// Context-specific.
    Context,
    /// Private.
    Private,
}

/// A decoded identifier and length (X.690 §8.1.2, §8.1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Tag class.
    pub class: Class,
    /// Constructed (true) or primitive encoding.
    pub constructed: bool,
    /// Tag number.
    pub number: u32,
    /// Definite length of the contents, or `None` for the indefinite form.
    pub length: Option<usize>,
    /// Octets taken by identifier and length.
    pub header_len: usize,
}

/// Reads the identifier and length octets at the start of `input`.
///
/// # Errors
/// [`BerError::Truncated`] if `input` ends inside them, [`BerError::Unsupported`] for tag
/// numbers above `u32::MAX` or lengths of more than four octets.
pub fn read_header(input: &[u8]) -> Result<Header, BerError> {
    // The usual header: one identifier octet (tag number below 31) and a short definite
    // length; the general reading below gives the same for it.
    if let [first, l, ..] = *input
        && first & 0x1f != 0x1f
        && l < 0x80
    {
        return Ok(Header {
            class: class_of(first),
            constructed: first & 0x20 != 0,
            number: u32::from(first & 0x1f),
            length: Some(usize::from(l)),
            header_len: 2,
        });
    }
    read_header_general(input)
}

/// The class bits of the first identifier octet (X.690 §8.1.2.2).
fn class_of(first: u8) -> Class {
    match first >> 6 {
        0 => Class::Universal,
        1 => Class::Application,
        2 => Class::Context,
        _ => Class::Private,
    }
}

/// [`read_header`] for every form: high tag numbers, long and indefinite lengths.
fn read_header_general(input: &[u8]) -> Result<Header, BerError> {
    let first = *input.first().ok_or(BerError::Truncated(0))?;
    let class = class_of(first);
    let constructed = first & 0x20 != 0;
    let mut pos = 1;
    let mut number = u32::from(first & 0x1f);
    if number == 0x1f {
        number = 0;
        loop {
            let b = *input.get(pos).ok_or(BerError::Truncated(pos))?;
            pos += 1;
            if number > (u32::MAX >> 7) {
                return Err(BerError::Unsupported(pos));
            }
            number = (number << 7) | u32::from(b & 0x7f);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let l = *input.get(pos).ok_or(BerError::Truncated(pos))?;
    pos += 1;
    let length = if l == 0x80 {
        None
    } else if l & 0x80 == 0 {
        Some(usize::from(l))
    } else {
        let n = usize::from(l & 0x7f);
        if n > 4 {
            return Err(BerError::Unsupported(pos));
        }
        let bytes = input.get(pos..pos + n).ok_or(BerError::Truncated(pos))?;
        pos += n;
        Some(
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)),
        )
    };
    Ok(Header {
        class,
        constructed,
        number,
        length,
        header_len: pos,
    })
}

/// Walks one complete BER value at the start of `input`, iteratively, and returns its total
/// encoded length (header, contents and any end-of-contents octets).
///
/// Constructed contents are entered; primitive contents are skipped whole.
///
/// # Errors
/// [`BerError::TooDeep`] beyond `max_depth` levels of constructed nesting,
/// [`BerError::Truncated`] if a length runs past its enclosing value,
/// [`BerError::IndefinitePrimitive`] for an indefinite primitive.
pub fn scan(input: &[u8], max_depth: usize) -> Result<usize, BerError> {
    match scan_definite(input, max_depth) {
        Some(n) => Ok(n),
        None => scan_general(input, max_depth),
    }
}

/// [`scan`] of a value whose every element has a one-octet tag and a definite length of at
/// most two length octets (as a transfer's MTS-APDU has), with its enclosing values kept in
/// place; None for anything else, errors included, which [`scan_general`] then reads and
/// decides. What it returns is what [`scan_general`] returns.
fn scan_definite(input: &[u8], max_depth: usize) -> Option<usize> {
    // The ends of the enclosing constructed values.
    let mut ends = [0usize; MAX_DEPTH];
    let (mut open, mut pos) = (0usize, 0usize);
    loop {
        let first = *input.get(pos)?;
        if first & 0x1f == 0x1f {
            return None;
        }
        let (len, header_len) = match *input.get(pos + 1)? {
            l if l < 0x80 => (usize::from(l), 2),
            0x81 => (usize::from(*input.get(pos + 2)?), 3),
            0x82 => (usize::from(u16::from_be_bytes([*input.get(pos + 2)?, *input.get(pos + 3)?])), 4),
            _ => return None,
        };
        let start = pos + header_len;
        let end = start + len;
        if end > open.checked_sub(1).map_or(input.len(), |i| ends[i]) {
            return None;
        }
        if first & 0x20 != 0 {
            if open >= max_depth.min(MAX_DEPTH) {
                return None;
            }
            if len > 0 {
                ends[open] = end;
                open += 1;
                pos = start;
                continue;
            }
        }
        pos = end;
        while open > 0 && pos == ends[open - 1] {
            open -= 1;
        }
        if open == 0 {
            return Some(pos);
        }
    }
}

/// [`scan`] for every form: indefinite lengths, high tag numbers, long lengths, errors.
fn scan_general(input: &[u8], max_depth: usize) -> Result<usize, BerError> {
    // Stack of enclosing constructed values: Some(end offset) for definite lengths, None
    // for indefinite ones (closed by 00 00). Up to MAX_DEPTH of them are kept in place; a
    // deeper `max_depth` spills the rest onto the heap.
    let mut stack = Stack::default();
    let mut pos = 0usize;
    loop {
        // Close every definite value that ends here, and an indefinite one on 00 00.
        loop {
            match stack.last() {
                Some(Some(end)) if pos == *end => {
                    stack.pop();
                }
                Some(Some(end)) if pos > *end => return Err(BerError::Truncated(*end)),
                Some(None) if input.get(pos..pos + 2) == Some(&[0u8, 0u8][..]) => {
                    pos += 2;
                    stack.pop();
                }
                _ => break,
            }
            if stack.is_empty() {
                return Ok(pos);
            }
        }
        let h = read_header(&input[pos..]).map_err(|e| shift(e, pos))?;
        let start = pos + h.header_len;
        match (h.constructed, h.length) {
            (false, None) => return Err(BerError::IndefinitePrimitive(pos)),
            (false, Some(len)) => {
                pos = start.checked_add(len).ok_or(BerError::Truncated(start))?;
                if pos > input.len() {
                    return Err(BerError::Truncated(start));
                }
                if let Some(Some(end)) = stack.last()
                    && pos > *end
                {
                    return Err(BerError::Truncated(*end));
                }
                if stack.is_empty() {
                    return Ok(pos);
                }
            }
            (true, length) => {
                if stack.len() >= max_depth {
                    return Err(BerError::TooDeep);
                }
                let end = match length {
                    Some(len) => {
                        let end = start.checked_add(len).ok_or(BerError::Truncated(start))?;
                        if end > input.len() {
                            return Err(BerError::Truncated(start));
                        }
                        if let Some(Some(outer)) = stack.last()
                            && end > *outer
                        {
                            return Err(BerError::Truncated(*outer));
                        }
                        Some(end)
                    }
                    None => None,
                };
                pos = start;
                stack.push(end);
                if end == Some(start) {
                    // Empty constructed value: closed by the loop above.
                    continue;
                }
            }
        }
    }
}

/// The enclosing values of [`scan`]: [`MAX_DEPTH`] of them without an allocation (a scan
/// runs over every transfer received), any more on the heap.
struct Stack {
    inline: [Option<usize>; MAX_DEPTH],
    len: usize,
    spill: Vec<Option<usize>>,
}

impl Default for Stack {
    fn default() -> Stack {
        Stack { inline: [None; MAX_DEPTH], len: 0, spill: Vec::new() }
    }
}

impl Stack {
    fn len(&self) -> usize {
        self.len + self.spill.len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn push(&mut self, v: Option<usize>) {
        if self.len < MAX_DEPTH {
            self.inline[self.len] = v;
            self.len += 1;
        } else {
            self.spill.push(v);
        }
    }

    fn pop(&mut self) {
        if self.spill.pop().is_none() && self.len > 0 {
            self.len -= 1;
        }
    }

    fn last(&self) -> Option<&Option<usize>> {
        self.spill.last().or_else(|| self.len.checked_sub(1).map(|i| &self.inline[i]))
    }
}

fn shift(e: BerError, by: usize) -> BerError {
    match e {
        BerError::Truncated(p) => BerError::Truncated(p + by),
        BerError::Unsupported(p) => BerError::Unsupported(p + by),
        other => other,
    }
}

/// Decodes exactly one `T` filling all of `input` (BER, indefinite lengths accepted).
///
/// # Errors
/// Any [`BerError`]: nesting beyond [`MAX_DEPTH`], octets after the value
/// ([`BerError::Trailing`]), or a structure mismatch.
pub fn decode<T: Decode>(input: &[u8]) -> Result<T, BerError> {
    let len = scan(input, MAX_DEPTH)?;
    if len != input.len() {
        return Err(BerError::Trailing(input.len() - len));
    }
    let mut decoder = rasn::ber::de::Decoder::new(input, rasn::ber::de::DecoderOptions::ber());
    let value = T::decode(&mut decoder).map_err(|e| BerError::Structure(e.to_string()))?;
    if !decoder.remaining().is_empty() {
        return Err(BerError::Trailing(decoder.remaining().len()));
    }
    Ok(value)
}

/// Checks that `value` is exactly one well-formed BER value (an open type's contents:
/// the decoder accepts a primitive encoding of the explicit tag around it, so its octets
/// must be checked on their own).
///
/// # Errors
/// As [`scan`], and [`BerError::Trailing`] for octets after the value.
pub fn check_one(value: &[u8]) -> Result<(), BerError> {
    let n = scan(value, MAX_DEPTH)?;
    if n != value.len() {
        return Err(BerError::Trailing(value.len() - n));
    }
    Ok(())
}

/// [`check_one`] on an optional open-type value.
pub(crate) fn check_opt(value: &Option<rasn::types::Any>) -> Result<(), BerError> {
    value.as_ref().map_or(Ok(()), |a| check_one(a.as_bytes()))
}

/// Encodes `value` in BER with definite lengths.
///
/// # Panics
/// Never for the types of this crate (their encoders cannot fail); a failure would be a bug.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    rasn::ber::encode(value).expect("ber encoding of a well-formed value")
}

/// Wraps `contents` in a definite-length identifier (`identifier` is the complete first
/// identifier octet, tag numbers up to 30).
pub fn wrap(identifier: u8, contents: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(contents.len() + 6);
    out.push(identifier);
    push_length(&mut out, contents.len());
    out.extend_from_slice(contents);
    out
}

/// Appends a definite BER length (X.690 §8.1.3.3–8.1.3.5).
pub fn push_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Octets a definite length of `len` takes (X.690 §8.1.3.3–8.1.3.5, shortest form).
pub fn length_len(len: usize) -> usize {
    if len < 0x80 {
        1
    } else {
        1 + (usize::BITS - len.leading_zeros()).div_ceil(8) as usize
    }
}

/// Appends an INTEGER (universal 2) holding `v` in the fewest two's-complement octets
/// (X.690 §8.3.2), as the rasn encoder writes it.
pub fn push_integer(out: &mut Vec<u8>, v: i64) {
    let n = integer_contents_len(v);
    out.push(0x02);
    out.push(n as u8);
    out.extend_from_slice(&v.to_be_bytes()[8 - n..]);
}

/// Octets of the shortest two's complement contents of `v` (1 to 8, X.690 §8.3.2).
fn integer_contents_len(v: i64) -> usize {
    let bytes = v.to_be_bytes();
    let mut skip = 0;
    while skip < 7 {
        let (b, next) = (bytes[skip], bytes[skip + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            skip += 1;
        } else {
            break;
        }
    }
    8 - skip
}

/// One definite-length value with the single identifier octet `id` at the start of
/// `input`: `(contents, rest)`. None for another identifier, the indefinite form or a
/// length running past `input` — the caller then takes the general decoder's path.
pub fn take_definite(input: &[u8], id: u8) -> Option<(&[u8], &[u8])> {
    if *input.first()? != id || id & 0x1f == 0x1f {
        return None;
    }
    let h = read_header(input).ok()?;
    let end = h.header_len.checked_add(h.length?)?;
    Some((input.get(h.header_len..end)?, &input[end..]))
}

/// The value of a small INTEGER's contents (1 to 8 octets, two's complement); None for
/// an empty or longer one.
pub fn integer_value(contents: &[u8]) -> Option<i64> {
    if contents.is_empty() || contents.len() > 8 {
        return None;
    }
    let first = i64::from(contents[0] as i8);
    Some(
        contents[1..]
            .iter()
            .fold(first, |acc, b| (acc << 8) | i64::from(*b)),
    )
}

/// The contents an indirect-reference and a single-ASN1-type value share in an EXTERNAL
/// (X.690 §8.18) and in a PDV-list (X.226 §8.4.2): `INTEGER context, [0] { value }`, filling
/// `contents`. Returns the context and the value, borrowed; None for any other form or a
/// value that is not one BER value ([`check_one`]).
pub fn context_and_single_value(contents: &[u8]) -> Option<(i64, &[u8])> {
    let (ctx, after) = take_definite(contents, 0x02)?;
    let (value, tail) = take_definite(after, 0xa0)?;
    if !tail.is_empty() {
        return None;
    }
    check_one(value).ok()?;
    Some((integer_value(ctx)?, value))
}

/// Octets [`push_context_and_single_value_head`] appends.
pub fn context_and_single_value_head_len(context: i64, value_len: usize) -> usize {
    2 + integer_contents_len(context) + 1 + length_len(value_len)
}

/// Appends the octets of [`context_and_single_value`]'s form up to the value: the INTEGER
/// and the `[0]` header for a value of `value_len` octets (the value itself follows them).
pub fn push_context_and_single_value_head(out: &mut Vec<u8>, context: i64, value_len: usize) {
    push_integer(out, context);
    out.push(0xa0);
    push_length(out, value_len);
}

/// Splits one value at the start of `input` into its header and contents, removing the
/// end-of-contents octets of an indefinite form. Returns `(header, contents, total length)`.
///
/// # Errors
/// As [`scan`].
pub fn split(input: &[u8]) -> Result<(Header, &[u8], usize), BerError> {
    let total = scan(input, MAX_DEPTH)?;
    let h = read_header(input)?;
    let end = if h.length.is_some() { total } else { total - 2 };
    Ok((h, &input[h.header_len..end], total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_and_single_value_head_len_is_what_is_pushed() {
        for context in [0i64, 1, 5, 127, 128, 255, 256, -1, -128, -129, i64::MAX, i64::MIN] {
            for value_len in [0usize, 1, 127, 128, 255, 256, 65535, 65536, 1 << 24] {
                let mut out = vec![7u8];
                push_context_and_single_value_head(&mut out, context, value_len);
                assert_eq!(out.len() - 1, context_and_single_value_head_len(context, value_len), "{context} {value_len}");
                let mut int = Vec::new();
                push_integer(&mut int, context);
                assert_eq!(&out[1..1 + int.len()], &int[..]);
            }
        }
    }

    /// Encodings of nested elements: primitive and constructed, with short, long and
    /// (constructed) indefinite lengths, and now and then a two-octet tag.
    fn nested_encoding() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        fn with_length(tag: &[u8], content: Vec<u8>, form: u8) -> Vec<u8> {
            let mut v = tag.to_vec();
            match form {
                1 if tag[0] & 0x20 != 0 => {
                    v.push(0x80);
                    v.extend_from_slice(&content);
                    v.extend_from_slice(&[0, 0]);
                    return v;
                }
                2 => v.extend_from_slice(&[0x82, (content.len() >> 8) as u8, content.len() as u8]),
                3 => v.extend_from_slice(&[0x83, 0, (content.len() >> 8) as u8, content.len() as u8]),
                _ => push_length(&mut v, content.len()),
            }
            v.extend_from_slice(&content);
            v
        }
        // Mostly what the definite-length way reads; now and then what it leaves.
        let form = || prop_oneof![6 => Just(0u8), 1 => Just(1), 2 => Just(2), 1 => Just(3)];
        let leaf = (prop_oneof![8 => Just(vec![0x04u8]), 4 => Just(vec![0x13]), 4 => Just(vec![0x80]), 1 => Just(vec![0x00]), 1 => Just(vec![0x1f, 0x21])], proptest::collection::vec(any::<u8>(), 0..140), form())
            .prop_map(|(tag, content, form)| with_length(&tag, content, form));
        leaf.prop_recursive(8, 64, 4, move |inner| {
            (prop_oneof![4 => Just(vec![0x30u8]), 4 => Just(vec![0x31]), 4 => Just(vec![0xa0]), 4 => Just(vec![0x63]), 1 => Just(vec![0x3f, 0x22])], proptest::collection::vec(inner, 0..4), form())
                .prop_map(|(tag, children, form)| with_length(&tag, children.concat(), form))
        })
    }

    proptest::proptest! {
        /// The definite-length way of `scan` returns what the general way returns, and
        /// leaves to it (None) whatever it does not read; whole or cut, changed in one
        /// octet, at depth caps around the nesting.
        #[test]
        fn scan_agrees_with_the_general_walk(
            value in nested_encoding(),
            change in proptest::option::weighted(0.3, (proptest::num::usize::ANY, proptest::num::u8::ANY)),
            cut in proptest::option::weighted(0.2, proptest::num::usize::ANY),
            max_depth in 0usize..12,
        ) {
            let mut input = value;
            if let Some((at, to)) = change && !input.is_empty() {
                let at = at % input.len();
                input[at] = to;
            }
            if let Some(at) = cut && !input.is_empty() {
                input.truncate(at % input.len());
            }
            for depth in [max_depth, MAX_DEPTH, 3 * MAX_DEPTH] {
                if let Some(n) = scan_definite(&input, depth) {
                    proptest::prop_assert_eq!(scan_general(&input, depth), Ok(n));
                }
                proptest::prop_assert_eq!(scan(&input, depth), scan_general(&input, depth));
            }
        }

        /// The short way of `read_header` gives what the general reading gives, for any
        /// octets.
        #[test]
        fn read_header_agrees_with_the_general_reading(input in proptest::collection::vec(proptest::prop_oneof![
            proptest::num::u8::ANY, proptest::strategy::Just(0x1fu8), proptest::strategy::Just(0x80u8), proptest::strategy::Just(0x7fu8),
        ], 0..12)) {
            proptest::prop_assert_eq!(format!("{:?}", read_header(&input)), format!("{:?}", read_header_general(&input)));
        }
    }

    /// `depth` SEQUENCEs (indefinite form), each holding the next, around a NULL.
    fn nested(depth: usize) -> Vec<u8> {
        let mut v = [0x30, 0x80].repeat(depth);
        v.extend_from_slice(&[0x05, 0x00]);
        v.extend(std::iter::repeat_n(0u8, 2 * depth));
        v
    }

    #[test]
    fn scan_nests_past_the_kept_stack_when_allowed() {
        for depth in [1, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 3 * MAX_DEPTH] {
            let v = nested(depth);
            assert_eq!(scan(&v, 3 * MAX_DEPTH).unwrap(), v.len(), "{depth}");
            let at_cap = scan(&v, MAX_DEPTH);
            if depth <= MAX_DEPTH {
                assert_eq!(at_cap.unwrap(), v.len(), "{depth}");
            } else {
                assert!(matches!(at_cap, Err(BerError::TooDeep)), "{depth}");
            }
        }
    }

    #[test]
    fn scan_definite_and_indefinite() {
        // SEQUENCE { SEQUENCE(indef) { INTEGER 1 } } followed by junk
        let v = [0x30, 0x07, 0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00, 0xff];
        assert_eq!(scan(&v, 8).unwrap(), 9);
        // empty constructed
        assert_eq!(scan(&[0x30, 0x00], 8).unwrap(), 2);
        assert_eq!(scan(&[0x30, 0x80, 0x00, 0x00], 8).unwrap(), 4);
        // inner length overruns outer
        assert!(matches!(
            scan(&[0x30, 0x02, 0x04, 0x05, 0, 0, 0, 0, 0], 8),
            Err(BerError::Truncated(_))
        ));
        // missing end-of-contents
        assert!(matches!(
            scan(&[0x30, 0x80, 0x02, 0x01, 0x01], 8),
            Err(BerError::Truncated(_))
        ));
        // primitive with indefinite length
        assert!(matches!(
            scan(&[0x04, 0x80, 0x00, 0x00], 8),
            Err(BerError::IndefinitePrimitive(0))
        ));
    }

    #[test]
    fn scan_caps_depth_iteratively() {
        let depth = 100_000;
        let mut v: Vec<u8> = (0..depth).flat_map(|_| [0x30, 0x80]).collect();
        v.extend((0..depth).flat_map(|_| [0x00, 0x00]));
        assert_eq!(scan(&v, MAX_DEPTH), Err(BerError::TooDeep));
        let mut ok: Vec<u8> = (0..10).flat_map(|_| [0x30, 0x80]).collect();
        ok.extend((0..10).flat_map(|_| [0x00, 0x00]));
        assert_eq!(scan(&ok, MAX_DEPTH), Ok(40));
    }

    #[test]
    fn split_strips_end_of_contents() {
        let v = [0xb0, 0x80, 0x02, 0x01, 0x05, 0x00, 0x00];
        let (h, c, total) = split(&v).unwrap();
        assert_eq!(
            (h.class, h.constructed, h.number),
            (Class::Context, true, 16)
        );
        assert_eq!(c, &[0x02, 0x01, 0x05]);
        assert_eq!(total, 7);
        let long = wrap(0x04, &[7u8; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(split(&long).unwrap().1.len(), 300);
    }

    #[test]
    fn decode_rejects_trailing() {
        assert_eq!(decode::<i64>(&[0x02, 0x01, 0x05]), Ok(5));
        assert_eq!(
            decode::<i64>(&[0x02, 0x01, 0x05, 0x00]),
            Err(BerError::Trailing(1))
        );
    }
}

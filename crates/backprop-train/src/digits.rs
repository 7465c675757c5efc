//! The handwritten digits loader: `data/digits.csv.gz` (gzip CSV) into a classification [`Dataset`].
//!
//! The digits file holds one sample per line: 64 comma-separated pixel counts
//! in `0..=16` (an 8x8 image, row-major), then the digit `0..=9`. [`parse`]
//! scales the pixels to `[0, 1]` and turns the labels into one-hot targets.
//! Every malformed line is an [`Error::Data`] naming its line and, where one
//! field is at fault, its column (both 1-based); a file that cannot be opened
//! is an [`Error::Io`]; nothing panics. The standard split is
//! [`Dataset::stratified_split`] with [`TEST_FRACTION`] and [`SPLIT_SEED`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use backprop_core::Scalar;
use flate2::read::MultiGzDecoder;

use crate::{Dataset, Error};

/// Pixels per digit image: 8 x 8.
pub const PIXELS: usize = 64;
/// Classes of the digits data set: the digits 0 to 9.
pub const CLASSES: usize = 10;
/// The largest pixel count in the digits file; pixels are divided by it.
pub const MAX_PIXEL: f64 = 16.0;
/// Columns per line of the digits file: the pixels, then the label.
pub const COLUMNS: usize = PIXELS + 1;
/// Samples in the digits file shipped in `data/digits.csv.gz`.
pub const SAMPLES: usize = 1797;
/// The share of each class held out for testing in the standard split.
pub const TEST_FRACTION: f64 = 0.2;
/// The seed of the standard split, fixed so every run tests on the same samples.
pub const SPLIT_SEED: u64 = 0;
/// The most bytes [`parse`] and [`load`] decompress: 64 MiB, about 200 times
/// the shipped file, so that a small gzip of gigabytes of zeros is refused
/// after reading a bounded amount ([`parse_with_limit`] sets another).
pub const MAX_DECOMPRESSED_BYTES: u64 = 64 << 20;

/// Reads the digits file at `path` (gzip-compressed CSV; see [`parse`]).
pub fn load<T: Scalar>(path: impl AsRef<Path>) -> Result<Dataset<T>, Error> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse(BufReader::new(file))
}

/// Reads gzip-compressed digits CSV (see [`parse_csv`]), decompressing at
/// most [`MAX_DECOMPRESSED_BYTES`].
///
/// Every gzip member is read (a file made by `cat a.gz b.gz` holds both
/// parts), and anything after the last member that is not another member is
/// an error. A stream that is not gzip, is cut short or has trailing
/// garbage is an [`Error::Data`] naming the line being read when
/// decompression failed; one that decompresses to more than the limit is
/// [`Error::DecompressedTooLarge`].
pub fn parse<T: Scalar>(gzip: impl Read) -> Result<Dataset<T>, Error> {
    parse_with_limit(gzip, MAX_DECOMPRESSED_BYTES)
}

/// [`parse`] with another limit on the decompressed size, in bytes.
pub fn parse_with_limit<T: Scalar>(gzip: impl Read, limit: u64) -> Result<Dataset<T>, Error> {
    let mut counted = CountingReader {
        inner: gzip,
        bytes: 0,
    };
    let mut limited = LimitedReader {
        inner: MultiGzDecoder::new(&mut counted),
        remaining: limit,
        exceeded: false,
    };
    let result = parse_lines(BufReader::new(&mut limited), true);
    if limited.exceeded {
        return Err(Error::DecompressedTooLarge { limit });
    }
    if counted.bytes == 0 {
        return Err(empty_file_error());
    }
    result
}

/// Reads uncompressed digits CSV: no header, one sample per line, 64 pixel
/// counts in `0..=16` then the label `0..=9`.
///
/// Pixels are scaled to `[0, 1]` (divided by 16) and labels become one-hot
/// targets. Blank lines are skipped; fields may carry surrounding spaces and
/// lines a trailing `\r`. Anything else out of place, or a file without a
/// sample, is an [`Error::Data`] naming the line and column (1-based).
pub fn parse_csv<T: Scalar>(csv: impl BufRead) -> Result<Dataset<T>, Error> {
    parse_lines(csv, false)
}

fn parse_lines<T: Scalar>(mut reader: impl BufRead, gzip: bool) -> Result<Dataset<T>, Error> {
    let mut features = Vec::with_capacity(SAMPLES * PIXELS);
    let mut labels = Vec::with_capacity(SAMPLES);
    let mut line = Vec::new();
    let mut line_number = 0;
    loop {
        line.clear();
        line_number += 1;
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|error| Error::Data {
                line: line_number,
                column: None,
                reason: if gzip {
                    format!("the gzip stream cannot be read (corrupt or truncated): {error}")
                } else {
                    format!("the stream cannot be read: {error}")
                },
            })?;
        if read == 0 {
            break;
        }
        let text = std::str::from_utf8(&line).map_err(|error| Error::Data {
            line: line_number,
            column: None,
            reason: format!("not UTF-8 text: {error}"),
        })?;
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        let label = parse_sample(text, line_number, &mut features)?;
        labels.push(label);
    }
    if labels.is_empty() {
        return Err(empty_file_error());
    }
    Dataset::classification(features, PIXELS, labels, CLASSES)
}

/// Appends one line's scaled pixels to `features` and returns its label; on
/// error `features` may hold part of the line, which the caller discards.
fn parse_sample<T: Scalar>(text: &str, line: usize, features: &mut Vec<T>) -> Result<usize, Error> {
    let found = text.split(',').count();
    if found != COLUMNS {
        return Err(Error::Data {
            line,
            column: None,
            reason: format!(
                "expected {COLUMNS} comma-separated columns ({PIXELS} pixels, then the label), found {found}"
            ),
        });
    }
    let mut label = 0;
    for (index, field) in text.split(',').enumerate() {
        let column = index + 1;
        let field = field.trim();
        let at = |reason: String| Error::Data {
            line,
            column: Some(column),
            reason,
        };
        let value: f64 = field
            .parse()
            .map_err(|_| at(format!("'{field}' is not a number")))?;
        if index < PIXELS {
            if !(0.0..=MAX_PIXEL).contains(&value) {
                return Err(at(format!(
                    "pixel {value} is outside 0..=16 (pixel {index} of the 8x8 image)"
                )));
            }
            features.push(T::from_f64(value / MAX_PIXEL));
        } else {
            if !(0.0..=(CLASSES - 1) as f64).contains(&value) || value.fract() != 0.0 {
                return Err(at(format!(
                    "label {value} is not a digit: it must be a whole number from 0 to 9"
                )));
            }
            label = value as usize;
        }
    }
    Ok(label)
}

fn empty_file_error() -> Error {
    Error::Data {
        line: 1,
        column: None,
        reason: "the file is empty: no sample to read".to_owned(),
    }
}

/// Counts the bytes read through it, to tell an empty file from a broken one.
struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.bytes += read as u64;
        Ok(read)
    }
}

/// Fails a read that would take the bytes read through it past a limit.
struct LimitedReader<R> {
    inner: R,
    remaining: u64,
    exceeded: bool,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        // Ask for one byte more than is left, to tell "exactly at the limit" from "past it".
        let wanted = buffer
            .len()
            .min(usize::try_from(self.remaining.saturating_add(1)).unwrap_or(usize::MAX));
        let read = self.inner.read(&mut buffer[..wanted])?;
        let read_u64 = read as u64;
        if read_u64 > self.remaining {
            self.exceeded = true;
            return Err(std::io::Error::other(
                "the decompressed size passed the limit",
            ));
        }
        self.remaining -= read_u64;
        Ok(read)
    }
}

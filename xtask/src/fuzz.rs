//! `cargo xtask fuzz`: seeded, structure-aware mutation of the inputs the library reads from files.
//!
//! Two targets, each fed inputs built from valid ones by mutations that know
//! their structure, so that most get past the first check:
//!
//! - `digits`: CSV lines of the digits format (fields replaced by edge-case
//!   numbers, columns dropped or repeated, lines cut, bytes flipped), then
//!   gzip (one member or several, truncated, trailing garbage, flipped
//!   bytes, a small bomb), read by `digits::parse_with_limit` and `parse_csv`;
//! - `checkpoint`: safetensors files of small networks whose JSON header is
//!   edited (widths such as `1099511627776,1`, activations, the checksum,
//!   tensor shapes, dtypes and offsets) or whose bytes are flipped or cut,
//!   read by `checkpoint::from_bytes` and `from_bytes_unsigned`; a network
//!   that loads is run forward and saved again.
//!
//! Input `i` of a campaign is a function of the seed and `i` alone, so any
//! one can be replayed. Every execution runs under `catch_unwind`, and the
//! binary's allocator refuses any single allocation above `--max-alloc`
//! (see `CappedAllocator` in `main.rs`): a size the library takes from its
//! input without checking makes it either return its typed error (through
//! `try_reserve`) or abort, and an abort ends the worker process, which the
//! campaign reports as a crash with the range to replay. Each target runs in
//! a worker process of its own; the campaign exits non-zero on any panic or
//! crash and keeps the panicking inputs under `target/fuzz/`.

use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use backprop::train::{checkpoint, digits};
use backprop::{Activation, Architecture, Backend, Inputs, Loss, MatrixRef, NaiveBackend, Network};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;

const USAGE: &str = "usage: cargo xtask fuzz [--executions N] [--seed S] [--target digits|checkpoint|all] [--max-alloc BYTES] [--replay START]

  --executions N     executions per target [default: 200000]
  --seed S           seed of the campaign [default: 1]
  --target NAME      digits, checkpoint or all [default: all]
  --max-alloc BYTES  the largest single allocation allowed [default: 268435456]
  --replay START     run executions START.. of one --target in this process,
                     writing each input to target/fuzz/current before it runs
                     (to find the input of a crash the campaign reported)";

/// The decompressed size the `digits` target allows: small, so that a bomb
/// is cheap to build and to refuse.
const DIGITS_LIMIT: u64 = 1 << 20;

/// Executions between two progress lines of a worker.
const PROGRESS_EVERY: u64 = 10_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    Digits,
    Checkpoint,
}

impl Target {
    const ALL: [Target; 2] = [Target::Digits, Target::Checkpoint];

    fn name(self) -> &'static str {
        match self {
            Target::Digits => "digits",
            Target::Checkpoint => "checkpoint",
        }
    }

    fn parse(name: &str) -> anyhow::Result<Vec<Target>> {
        Ok(match name {
            "all" => Target::ALL.to_vec(),
            "digits" => vec![Target::Digits],
            "checkpoint" => vec![Target::Checkpoint],
            other => bail!("unknown fuzz target '{other}': digits, checkpoint or all"),
        })
    }
}

struct Options {
    executions: u64,
    seed: u64,
    targets: Vec<Target>,
    max_alloc: usize,
    replay: Option<u64>,
    /// Set in a worker process: run this range of one target here.
    worker: Option<u64>,
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        executions: 200_000,
        seed: 1,
        targets: Target::ALL.to_vec(),
        max_alloc: 256 << 20,
        replay: None,
        worker: None,
    };
    crate::for_each_arg(args, USAGE, |arg, value| {
        let number = |text: String| -> anyhow::Result<u64> {
            text.parse()
                .with_context(|| format!("{arg} takes a whole number, got '{text}'"))
        };
        match arg {
            "--executions" => options.executions = number(value()?)?,
            "--seed" => options.seed = number(value()?)?,
            "--target" => options.targets = Target::parse(&value()?)?,
            "--max-alloc" => {
                options.max_alloc = usize::try_from(number(value()?)?).unwrap_or(usize::MAX)
            }
            "--replay" => options.replay = Some(number(value()?)?),
            "--worker" => options.worker = Some(number(value()?)?),
            other => bail!("unknown option '{other}'\n{USAGE}"),
        }
        Ok(())
    })?;
    Ok(options)
}

/// Runs the campaign; `Ok(false)` if any execution panicked or a worker crashed.
pub(crate) fn run(args: &[String], root: &Path) -> anyhow::Result<bool> {
    let options = parse(args)?;
    let out = root.join("target").join("fuzz");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if let Some(start) = options.worker.or(options.replay) {
        let [target] = options.targets[..] else {
            bail!("--replay runs one --target, not {}", options.targets.len());
        };
        let replay = options.replay.is_some();
        return run_here(target, &options, start, replay, &out);
    }
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    // A binary rebuilt while a campaign runs reads as "... (deleted)": the
    // workers then start the new one at the same path.
    let exe = match exe
        .to_str()
        .and_then(|path| path.strip_suffix(" (deleted)"))
    {
        Some(path) => std::path::PathBuf::from(path),
        None => exe,
    };
    let mut clean = true;
    let started = Instant::now();
    for target in options.targets.iter().copied() {
        let output = Command::new(&exe)
            .args(["fuzz", "--target", target.name()])
            .args(["--executions", &options.executions.to_string()])
            .args(["--seed", &options.seed.to_string()])
            .args(["--max-alloc", &options.max_alloc.to_string()])
            .args(["--worker", "0"])
            .output()
            .context("starting a fuzz worker")?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let summary = stdout
            .lines()
            .rev()
            .find(|line| line.starts_with("result "));
        match (output.status.success(), summary) {
            (true, Some(summary)) => println!("{:<10} {}", target.name(), &summary[7..]),
            (_, summary) => {
                clean = false;
                let last = stdout
                    .lines()
                    .rev()
                    .find_map(|line| line.strip_prefix("progress "))
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
                if let Some(summary) = summary {
                    println!("{:<10} {}", target.name(), &summary[7..]);
                } else {
                    println!(
                        "{:<10} CRASH: the worker ended with {} after execution {last}; replay with\n           cargo xtask fuzz --target {} --seed {} --replay {last}",
                        target.name(),
                        output.status,
                        target.name(),
                        options.seed,
                    );
                }
                let stderr = String::from_utf8_lossy(&output.stderr);
                for line in stderr
                    .lines()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                {
                    println!("           {line}");
                }
            }
        }
    }
    println!(
        "fuzz: {} executions per target, seed {}, allocations capped at {} bytes, {:.1} s: {}",
        options.executions,
        options.seed,
        options.max_alloc,
        started.elapsed().as_secs_f64(),
        if clean {
            "no panic, no crash"
        } else {
            "FAILED"
        }
    );
    Ok(clean)
}

/// Counts of one worker's executions.
#[derive(Default)]
struct Tally {
    executions: u64,
    ok: u64,
    errors: u64,
    panics: u64,
}

/// Runs executions `start..start + executions` of `target` in this process.
fn run_here(
    target: Target,
    options: &Options,
    start: u64,
    replay: bool,
    out: &Path,
) -> anyhow::Result<bool> {
    crate::ALLOCATION_LIMIT.store(options.max_alloc, std::sync::atomic::Ordering::Relaxed);
    let corpus = Corpus::new()?;
    // Panics are counted and their inputs kept; their messages would drown the report.
    panic::set_hook(Box::new(|_| {}));
    let mut tally = Tally::default();
    let current = out.join("current");
    let mut kept = 0;
    for index in start..start.saturating_add(options.executions) {
        let mut rng = Rng::new(options.seed, index);
        let input = match target {
            Target::Digits => corpus.digits_input(&mut rng),
            Target::Checkpoint => corpus.checkpoint_input(&mut rng, index % 2 == 1),
        };
        if replay {
            std::fs::write(&current, &input).context("writing target/fuzz/current")?;
        }
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| match target {
            Target::Digits => execute_digits(&input, index),
            Target::Checkpoint => execute_checkpoint(&input, index),
        }));
        tally.executions += 1;
        match outcome {
            Ok(true) => tally.ok += 1,
            Ok(false) => tally.errors += 1,
            Err(_) => {
                tally.panics += 1;
                if kept < 20 {
                    kept += 1;
                    let path = out.join(format!("{}-{index}.bin", target.name()));
                    std::fs::write(&path, &input)
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
        }
        if (index + 1) % PROGRESS_EVERY == 0 {
            println!("progress {}", index + 1);
            let _ = std::io::stdout().flush();
        }
    }
    let _ = panic::take_hook();
    println!(
        "result {} executions: {} accepted, {} typed errors, {} panics, 0 crashes (allocations over {} bytes refused: {})",
        tally.executions,
        tally.ok,
        tally.errors,
        tally.panics,
        options.max_alloc,
        crate::REFUSED_ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed),
    );
    if tally.panics > 0 {
        println!("panicking inputs kept under {}", out.display());
    }
    Ok(tally.panics == 0)
}

/// Reads `input` as the digits loader does; whether it was accepted.
fn execute_digits(input: &[u8], index: u64) -> bool {
    if index % 4 == 3 {
        return digits::parse_csv::<f64>(input).is_ok();
    }
    digits::parse_with_limit::<f32>(input, DIGITS_LIMIT).is_ok()
}

/// Loads `input` as a checkpoint; one that loads is run forward and saved
/// again. Whether it loaded.
fn execute_checkpoint(input: &[u8], index: u64) -> bool {
    fn use_network<T: backprop::Scalar>(network: &Network<T>) {
        let n = network.architecture().input_width();
        let x = vec![T::from_f64(0.5); n];
        let mut out = vec![T::ZERO; network.architecture().output_width()];
        if let Ok(matrix) = MatrixRef::new(&x, 1, n)
            && let Ok(inputs) = Inputs::new(matrix)
        {
            let _ = NaiveBackend::<T>::new().forward(network, &inputs, &mut out);
        }
        let _ = checkpoint::to_bytes(network);
    }
    let unsigned = index % 2 == 1;
    if index.is_multiple_of(3) {
        let loaded = if unsigned {
            checkpoint::from_bytes_unsigned::<f64>(input)
        } else {
            checkpoint::from_bytes::<f64>(input)
        };
        loaded.map(|network| use_network(&network)).is_ok()
    } else {
        let loaded = if unsigned {
            checkpoint::from_bytes_unsigned::<f32>(input)
        } else {
            checkpoint::from_bytes::<f32>(input)
        };
        loaded.map(|network| use_network(&network)).is_ok()
    }
}

/// SplitMix64, seeded by the campaign's seed and the execution's index.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, index: u64) -> Self {
        let mut rng = Rng(seed ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` at least 1).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Numbers that have broken parsers and allocators before.
const EDGE_NUMBERS: [&str; 24] = [
    "0",
    "1",
    "16",
    "17",
    "-1",
    "9",
    "10",
    "0.5",
    "1e309",
    "-1e309",
    "NaN",
    "inf",
    "-inf",
    "",
    " ",
    "1099511627776",
    "4611686018427387904",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775807",
    "1e-400",
    "3.4e38",
    "0x10",
    "٣",
];

/// Valid inputs to start from, built once per worker.
struct Corpus {
    /// Valid digits CSV texts of a few lines each.
    csv: Vec<String>,
    /// A gzip member of 2 MiB of zeros: twice the target's limit.
    bomb: Vec<u8>,
    /// Valid checkpoints of small networks, in `f32` and `f64`.
    checkpoints: Vec<Vec<u8>>,
}

impl Corpus {
    fn new() -> anyhow::Result<Self> {
        let mut rng = Rng::new(0, 0);
        let csv = (1..=4)
            .map(|lines| {
                (0..lines)
                    .map(|_| {
                        let mut fields: Vec<String> = (0..digits::PIXELS)
                            .map(|_| rng.below(17).to_string())
                            .collect();
                        fields.push(rng.below(10).to_string());
                        fields.join(",") + "\n"
                    })
                    .collect()
            })
            .collect();
        let bomb = gzip(&vec![0; 2 << 20])?;
        let mut checkpoints = Vec::new();
        let sigmoid = Activation::Sigmoid;
        let shapes = [
            Architecture::seed(3, 4, 2)?,
            Architecture::new(&[2, 1], &[Activation::Identity], Loss::Mse)?,
            Architecture::new(
                &[4, 3, 3, 2],
                &[Activation::Relu, Activation::Tanh, Activation::Identity],
                Loss::SoftmaxCrossEntropy,
            )?,
            Architecture::new(&[1, 2, 1], &[sigmoid, sigmoid], Loss::Mse)?,
        ];
        for (seed, architecture) in shapes.into_iter().enumerate() {
            let network = Network::<f64>::try_init(architecture, seed as u64)?;
            checkpoints.push(canonical(checkpoint::to_bytes(&network)?));
            checkpoints.push(canonical(checkpoint::to_bytes(
                &network.to_precision::<f32>(),
            )?));
        }
        Ok(Corpus {
            csv,
            bomb,
            checkpoints,
        })
    }

    fn digits_input(&self, rng: &mut Rng) -> Vec<u8> {
        let mut text = rng.pick(&self.csv).clone().into_bytes();
        for _ in 0..rng.below(4) {
            mutate_csv(&mut text, rng);
        }
        let mut bytes = match gzip(&text) {
            Ok(bytes) => bytes,
            Err(_) => return text,
        };
        match rng.below(12) {
            0 => return text, // not gzip at all
            1 => {
                // Several members, as `cat a.gz b.gz` makes.
                let more = gzip(rng.pick(&self.csv).as_bytes()).unwrap_or_default();
                bytes.extend_from_slice(&more);
            }
            2 => bytes.extend((0..1 + rng.below(16)).map(|_| rng.next() as u8)),
            3 => bytes.truncate(rng.below(bytes.len())),
            4 => flip_bytes(&mut bytes, rng),
            5 => {
                bytes = self.bomb.clone();
                if rng.chance(50) {
                    bytes.extend_from_slice(&gzip(&text).unwrap_or_default());
                }
            }
            6 => bytes.extend_from_slice(&[0x1f, 0x8b]),
            _ => {}
        }
        bytes
    }

    /// A mutated checkpoint; for an `unsigned` load, most lose their
    /// checksum, so that the edits reach the checks behind it.
    fn checkpoint_input(&self, rng: &mut Rng, unsigned: bool) -> Vec<u8> {
        let mut bytes = rng.pick(&self.checkpoints).clone();
        let edits = 1 + rng.below(3);
        for _ in 0..edits {
            match rng.below(10) {
                0 => flip_bytes(&mut bytes, rng),
                1 => bytes.truncate(rng.below(bytes.len() + 1)),
                2 => {
                    // The header's length prefix.
                    let length = [0u64, 1, 2, 96, 1 << 20, u64::MAX, rng.next()];
                    if bytes.len() >= 8 {
                        bytes[..8].copy_from_slice(&rng.pick(&length).to_le_bytes());
                    }
                }
                _ => edit_header(&mut bytes, rng, None),
            }
        }
        if unsigned && rng.chance(70) {
            edit_header(&mut bytes, rng, Some(Edit::DropChecksum));
        } else if !unsigned && rng.chance(70) {
            // Signed again after the edits, so that they reach the checks
            // behind the checksum on the path a plain `load` takes.
            sign(&mut bytes);
        }
        bytes
    }
}

/// Replaces the checksum of a safetensors file by the one its metadata and
/// tensors call for (as `checkpoint::CHECKSUM_KEY` defines it), where the
/// header can be read; otherwise leaves the file alone.
fn sign(bytes: &mut Vec<u8>) {
    let Some(prefix) = bytes.get(..8) else {
        return;
    };
    let mut length = [0; 8];
    length.copy_from_slice(prefix);
    let Ok(length) = usize::try_from(u64::from_le_bytes(length)) else {
        return;
    };
    let Some(header) = bytes.get(8..8usize.saturating_add(length)) else {
        return;
    };
    let Ok(mut json) = serde_json::from_slice::<Value>(header) else {
        return;
    };
    let data = bytes[8 + length..].to_vec();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut update = |chunk: &[u8]| {
        for &byte in chunk {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    let Some(object) = json.as_object_mut() else {
        return;
    };
    let metadata = object.get("__metadata__").and_then(Value::as_object);
    for key in ["widths", "activations", "loss"] {
        let value = metadata
            .and_then(|m| m.get(key))
            .and_then(Value::as_str)
            .unwrap_or_default();
        update(format!("{key}={value}\n").as_bytes());
    }
    // Tensors in layer order, weights before biases, as the loader reads them.
    let mut tensors: Vec<(usize, bool, &[u8])> = Vec::new();
    for (name, tensor) in object.iter() {
        let mut parts = name.split('.');
        let (Some("layers"), Some(layer), Some(kind)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(layer) = layer.parse::<usize>() else {
            continue;
        };
        let offsets = tensor
            .get("data_offsets")
            .and_then(Value::as_array)
            .map(|o| o.iter().filter_map(Value::as_u64).collect::<Vec<_>>());
        let Some([start, end]) = offsets.as_deref() else {
            continue;
        };
        let (Ok(start), Ok(end)) = (usize::try_from(*start), usize::try_from(*end)) else {
            continue;
        };
        if let Some(chunk) = data.get(start..end) {
            tensors.push((layer, kind == "bias", chunk));
        }
    }
    tensors.sort_by_key(|&(layer, bias, _)| (layer, bias));
    for (_, _, chunk) in tensors {
        update(chunk);
    }
    if let Some(Value::Object(metadata)) = object.get_mut("__metadata__") {
        metadata.insert(
            "checksum_fnv1a64".into(),
            Value::from(format!("{hash:016x}")),
        );
    }
    write_file(bytes, &json, &data);
}

/// A safetensors file with its JSON header's keys in sorted order: the
/// saver writes the metadata in a hash map's order, which changes from
/// process to process, and every input of a campaign must be the same in
/// every process for a replay to find it.
fn canonical(mut bytes: Vec<u8>) -> Vec<u8> {
    let Some(prefix) = bytes.get(..8) else {
        return bytes;
    };
    let mut length = [0; 8];
    length.copy_from_slice(prefix);
    let Ok(length) = usize::try_from(u64::from_le_bytes(length)) else {
        return bytes;
    };
    let Some(json) = bytes
        .get(8..8usize.saturating_add(length))
        .and_then(|header| serde_json::from_slice::<Value>(header).ok())
    else {
        return bytes;
    };
    let data = bytes[8 + length..].to_vec();
    write_file(&mut bytes, &json, &data);
    bytes
}

fn gzip(bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes)?;
    encoder.finish()
}

fn flip_bytes(bytes: &mut [u8], rng: &mut Rng) {
    if bytes.is_empty() {
        return;
    }
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len());
        bytes[at] ^= 1 << rng.below(8);
    }
}

/// One structural edit of digits CSV text.
fn mutate_csv(text: &mut Vec<u8>, rng: &mut Rng) {
    let owned = String::from_utf8_lossy(text).into_owned();
    let mut lines: Vec<String> = owned.lines().map(str::to_owned).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let line = rng.below(lines.len());
    let mut fields: Vec<String> = lines[line].split(',').map(str::to_owned).collect();
    let field = rng.below(fields.len());
    match rng.below(12) {
        0..=2 => fields[field] = (*rng.pick(&EDGE_NUMBERS)).to_owned(),
        3 => {
            fields.remove(field);
        }
        4 => {
            let copy = fields[field].clone();
            fields.insert(field, copy);
        }
        5 => fields[field] = "9".repeat(1 + rng.below(4096)),
        6 => {
            let copy = lines[line].clone();
            for _ in 0..rng.below(64) {
                lines.push(copy.clone());
            }
        }
        7 => lines.insert(line, String::new()),
        8 => fields[field].push('\r'),
        9 => {
            let mut bytes = std::mem::take(text);
            flip_bytes(&mut bytes, rng);
            *text = bytes;
            return;
        }
        10 => fields[field] = format!(" {} ", fields[field]),
        _ => {
            let keep = rng.below(lines[line].len() + 1);
            fields = vec![lines[line].get(..keep).unwrap_or_default().to_owned()];
        }
    }
    if rng.below(12) != 11 {
        lines[line] = fields.join(",");
    }
    *text = (lines.join("\n") + if rng.chance(80) { "\n" } else { "" }).into_bytes();
}

/// An edit of a header chosen by the caller.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Edit {
    DropChecksum,
}

/// One edit of a safetensors file's JSON header (`edit`, or one at random):
/// metadata values, tensor shapes, dtypes and offsets; the data and the
/// length prefix follow it.
fn edit_header(bytes: &mut Vec<u8>, rng: &mut Rng, edit: Option<Edit>) {
    let Some(prefix) = bytes.get(..8) else {
        return;
    };
    let mut length = [0; 8];
    length.copy_from_slice(prefix);
    let Ok(length) = usize::try_from(u64::from_le_bytes(length)) else {
        return;
    };
    let Some(header) = bytes.get(8..8usize.saturating_add(length)) else {
        return;
    };
    let Ok(mut json) = serde_json::from_slice::<Value>(header) else {
        return;
    };
    let data = bytes[8 + length..].to_vec();
    let Some(object) = json.as_object_mut() else {
        return;
    };
    let keys: Vec<String> = object.keys().cloned().collect();
    let widths = [
        "1099511627776,1",
        "4611686018427387904,1",
        "18446744073709551615,1",
        "3,4,2",
        "2,1",
        "1,1,1,1,1,1",
        "0,1",
        "",
        "3,-4,2",
        "4,3,3,2",
        "1,2,1",
        "1,1099511627776,1",
    ];
    let names = [
        "sigmoid",
        "tanh",
        "relu",
        "identity",
        "sigmoid,sigmoid",
        "relu,tanh,identity",
        "bogus",
        "",
    ];
    if edit == Some(Edit::DropChecksum) {
        if let Some(Value::Object(metadata)) = object.get_mut("__metadata__") {
            metadata.remove("checksum_fnv1a64");
        }
        write_file(bytes, &json, &data);
        return;
    }
    match rng.below(8) {
        0..=2 => {
            // Metadata.
            if let Some(Value::Object(metadata)) = object.get_mut("__metadata__") {
                match rng.below(6) {
                    0 => {
                        metadata.insert("widths".into(), Value::from(*rng.pick(&widths)));
                    }
                    1 => {
                        metadata.insert("activations".into(), Value::from(*rng.pick(&names)));
                    }
                    2 => {
                        let loss = *rng.pick(&["mse", "softmax-cross-entropy", "l1"]);
                        metadata.insert("loss".into(), Value::from(loss));
                    }
                    3 => {
                        metadata.remove("checksum_fnv1a64");
                    }
                    4 => {
                        metadata.insert("checksum_fnv1a64".into(), Value::from("0000000000000000"));
                    }
                    _ => {
                        let key = rng.pick(&["widths", "activations", "loss"]);
                        metadata.remove(*key);
                    }
                }
            }
        }
        3..=5 => {
            // A tensor's shape, dtype or offsets.
            let key = rng.pick(&keys).clone();
            if let Some(Value::Object(tensor)) = object.get_mut(&key) {
                let huge = [0u64, 1, 2, 3, 4, 1 << 40, 1 << 62, u64::MAX, rng.next()];
                match rng.below(4) {
                    0 => {
                        let dims: Vec<u64> = (0..rng.below(4)).map(|_| *rng.pick(&huge)).collect();
                        tensor.insert("shape".into(), Value::from(dims));
                    }
                    1 => {
                        let dtype = *rng.pick(&["F32", "F64", "F16", "I64", "BOOL", "X"]);
                        tensor.insert("dtype".into(), Value::from(dtype));
                    }
                    2 => {
                        let offsets = vec![*rng.pick(&huge), *rng.pick(&huge)];
                        tensor.insert("data_offsets".into(), Value::from(offsets));
                    }
                    _ => {
                        object.remove(&key);
                    }
                }
            }
        }
        6 => {
            // A tensor renamed, or one more.
            let key = rng.pick(&keys).clone();
            if let Some(value) = object.remove(&key) {
                let name = *rng.pick(&[
                    "layers.9.weight",
                    "layers.0.bias",
                    "extra",
                    "layers.1.weight",
                ]);
                object.insert(name.into(), value);
            }
        }
        _ => {
            // The data cut or grown.
            let mut data = data;
            if rng.chance(50) {
                data.truncate(rng.below(data.len() + 1));
            } else {
                data.extend((0..rng.below(64)).map(|_| rng.next() as u8));
            }
            write_file(bytes, &json, &data);
            return;
        }
    }
    write_file(bytes, &json, &data);
}

fn write_file(bytes: &mut Vec<u8>, json: &Value, data: &[u8]) {
    let Ok(header) = serde_json::to_vec(json) else {
        return;
    };
    bytes.clear();
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(data);
}

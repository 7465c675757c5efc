//! Checkpoints: a network saved in the safetensors format and loaded back bit-identically.
//!
//! Each weight layer `l` (from 0) is stored as two tensors laid out as
//! PyTorch's `nn.Linear` lays them out: `layers.{l}.weight` of shape
//! `[outputs, inputs]` (row-major, `W^l` exactly as [`Params`] holds
//! it) and `layers.{l}.bias` of shape `[outputs]`, in `F32` or `F64` as the
//! network is. The file's metadata holds the architecture (`widths`,
//! `activations`, `loss`) and a checksum of the architecture and of the
//! parameter bytes, so a checkpoint is a whole network, and a flipped byte
//! or an edited architecture is caught.
//!
//! Loading trusts nothing it reads: a file that is not safetensors, a
//! missing or unexpected tensor, a wrong shape or dtype, a missing or invalid
//! architecture, a missing checksum or one that does not match is an
//! [`Error::Checkpoint`] naming the tensor and what was expected and found;
//! a NaN or an infinity among the parameters is the core's
//! `NonFiniteParameter` (in [`Error::Core`]). Every tensor is checked
//! against the architecture before any parameter is allocated, so the
//! memory a load takes is bounded by the file's size, whatever its metadata
//! claims. A file without a checksum (written by hand, or by another tool)
//! loads only through [`from_bytes_unsigned`] or [`load_unsigned`], which a
//! caller asks for by name; a checksum that is present is checked there too
//! (and may be the older one of the tensors' bytes alone).

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use backprop_core::{Activation, Architecture, Loss, Network, Params, Scalar};

use crate::Error;

/// The metadata key of the layer widths, such as `64,32,10`.
pub const WIDTHS_KEY: &str = "widths";
/// The metadata key of the activations, one per weight layer, such as `sigmoid,sigmoid`.
pub const ACTIVATIONS_KEY: &str = "activations";
/// The metadata key of the loss, such as `mse`.
pub const LOSS_KEY: &str = "loss";
/// The metadata key of the checksum: FNV-1a (64 bits, hexadecimal) of the
/// architecture (`widths=...\n`, `activations=...\n`, `loss=...\n`, the
/// metadata values as stored) and then of every tensor's bytes, layer by
/// layer, weights before biases.
pub const CHECKSUM_KEY: &str = "checksum_fnv1a64";

/// The name of layer `layer`'s weight tensor, such as `layers.0.weight`.
pub fn weight_name(layer: usize) -> String {
    format!("layers.{layer}.weight")
}

/// The name of layer `layer`'s bias tensor, such as `layers.0.bias`.
pub fn bias_name(layer: usize) -> String {
    format!("layers.{layer}.bias")
}

/// The safetensors dtype that holds a `T` exactly.
fn dtype_of<T: Scalar>() -> Dtype {
    if size_of::<T>() == size_of::<f32>() {
        Dtype::F32
    } else {
        Dtype::F64
    }
}

/// `values` as little-endian bytes of their own width.
fn to_le_bytes<T: Scalar>(values: &[T]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(size_of_val(values));
    for value in values {
        match dtype_of::<T>() {
            // Widening an f32 to f64 is exact, so narrowing it back is too.
            Dtype::F32 => bytes.extend_from_slice(&(value.to_f64() as f32).to_le_bytes()),
            _ => bytes.extend_from_slice(&value.to_f64().to_le_bytes()),
        }
    }
    bytes
}

/// Little-endian bytes of `T`s (the caller has checked the dtype and length) as values.
fn from_le_bytes<T: Scalar>(bytes: &[u8]) -> Vec<T> {
    match dtype_of::<T>() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|chunk| {
                T::from_f64(f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) as f64)
            })
            .collect(),
        _ => bytes
            .chunks_exact(8)
            .map(|chunk| {
                let mut word = [0; 8];
                word.copy_from_slice(chunk);
                T::from_f64(f64::from_le_bytes(word))
            })
            .collect(),
    }
}

/// FNV-1a, 64 bits: a small, dependency-free checksum that any flipped byte changes.
struct Fnv1a(u64);

impl Fnv1a {
    fn new() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0)
    }
}

fn checkpoint_error(tensor: Option<&str>, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        tensor: tensor.map(str::to_owned),
        reason: reason.into(),
    }
}

fn join<I: IntoIterator<Item = impl ToString>>(items: I) -> String {
    items
        .into_iter()
        .map(|item| item.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The network as the bytes of a safetensors file.
pub fn to_bytes<T: Scalar>(network: &Network<T>) -> Result<Vec<u8>, Error> {
    network.check_finite()?;
    let architecture = network.architecture();
    let params = network.params();
    let mut buffers = Vec::with_capacity(2 * architecture.layer_count());
    let widths = join(architecture.widths());
    let activations = join(architecture.activations().iter().map(|a| a.name()));
    let loss = architecture.loss().name().to_owned();
    let mut checksum = Fnv1a::new();
    checksum_architecture(&mut checksum, &widths, &activations, &loss);
    for layer in (0..architecture.layer_count()).filter_map(|l| params.layer(l)) {
        let (inputs, outputs) = (layer.shape.inputs, layer.shape.outputs);
        let weight_bytes = to_le_bytes(layer.weights);
        let bias_bytes = to_le_bytes(layer.bias);
        checksum.update(&weight_bytes);
        checksum.update(&bias_bytes);
        buffers.push((vec![outputs, inputs], weight_bytes));
        buffers.push((vec![outputs], bias_bytes));
    }
    let mut tensors = Vec::with_capacity(buffers.len());
    for (index, (shape, bytes)) in buffers.iter().enumerate() {
        let (layer, is_weight) = (index / 2, index % 2 == 0);
        let name = if is_weight {
            weight_name(layer)
        } else {
            bias_name(layer)
        };
        let view = TensorView::new(dtype_of::<T>(), shape.clone(), bytes)
            .map_err(|error| checkpoint_error(Some(&name), error.to_string()))?;
        tensors.push((name, view));
    }
    let metadata = HashMap::from([
        (WIDTHS_KEY.to_owned(), widths),
        (ACTIVATIONS_KEY.to_owned(), activations),
        (LOSS_KEY.to_owned(), loss),
        (CHECKSUM_KEY.to_owned(), checksum.hex()),
    ]);
    safetensors::serialize(tensors, Some(metadata))
        .map_err(|error| checkpoint_error(None, format!("cannot serialise: {error}")))
}

/// Feeds the architecture's metadata values to the checksum, each after its key.
fn checksum_architecture(checksum: &mut Fnv1a, widths: &str, activations: &str, loss: &str) {
    for (key, value) in [
        (WIDTHS_KEY, widths),
        (ACTIVATIONS_KEY, activations),
        (LOSS_KEY, loss),
    ] {
        checksum.update(key.as_bytes());
        checksum.update(b"=");
        checksum.update(value.as_bytes());
        checksum.update(b"\n");
    }
}

/// Whether a load demands the checksum.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signature {
    Required,
    IfPresent,
}

/// Reads a network of precision `T` from the bytes of a safetensors file
/// written by [`to_bytes`] (or by anything that follows the same layout,
/// checksum included).
pub fn from_bytes<T: Scalar>(bytes: &[u8]) -> Result<Network<T>, Error> {
    read_network(bytes, Signature::Required)
}

/// Reads a network like [`from_bytes`], except that a file without a
/// checksum is accepted: the unsigned mode, for files written by other
/// tools. Everything else is checked as [`from_bytes`] checks it, the
/// checksum too when the file has one; a checksum of the tensors' bytes
/// alone, as files saved before it covered the architecture hold, is
/// accepted here too.
pub fn from_bytes_unsigned<T: Scalar>(bytes: &[u8]) -> Result<Network<T>, Error> {
    read_network(bytes, Signature::IfPresent)
}

fn read_network<T: Scalar>(bytes: &[u8], signature: Signature) -> Result<Network<T>, Error> {
    let file = SafeTensors::deserialize(bytes).map_err(|error| {
        checkpoint_error(None, format!("not a valid safetensors file: {error}"))
    })?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|error| {
        checkpoint_error(None, format!("not a valid safetensors file: {error}"))
    })?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let stored_checksum = metadata.get(CHECKSUM_KEY);
    if stored_checksum.is_none() && signature == Signature::Required {
        return Err(checkpoint_error(
            None,
            format!(
                "the metadata has no '{CHECKSUM_KEY}' entry, so neither the architecture nor the tensors can be trusted; load_unsigned reads such a file"
            ),
        ));
    }
    let architecture = architecture_from(&metadata)?;

    let mut checksum = Fnv1a::new();
    // What files saved before the checksum covered the architecture hold;
    // accepted in the unsigned mode only.
    let mut tensors_only = Fnv1a::new();
    let text = |key: &str| metadata.get(key).map_or("", String::as_str);
    checksum_architecture(
        &mut checksum,
        text(WIDTHS_KEY),
        text(ACTIVATIONS_KEY),
        text(LOSS_KEY),
    );
    // Every tensor is looked at before a value is copied, so a claim of
    // more parameters than the file holds fails before anything is allocated.
    let mut expected_names = Vec::with_capacity(2 * architecture.layer_count());
    for (layer, shape) in architecture.layers().iter().enumerate() {
        let weight_shape = [shape.outputs, shape.inputs];
        let bias_shape = [shape.outputs];
        for (name, expected_shape) in [
            (weight_name(layer), &weight_shape[..]),
            (bias_name(layer), &bias_shape[..]),
        ] {
            let tensor = file.tensor(&name).map_err(|_| {
                checkpoint_error(
                    Some(&name),
                    format!(
                        "missing; the architecture {} needs it with shape {expected_shape:?}",
                        architecture
                    ),
                )
            })?;
            if tensor.dtype() != dtype_of::<T>() {
                return Err(checkpoint_error(
                    Some(&name),
                    format!(
                        "has dtype {}, but a network of {} needs {}",
                        tensor.dtype(),
                        T::NAME,
                        dtype_of::<T>()
                    ),
                ));
            }
            if tensor.shape() != expected_shape {
                return Err(checkpoint_error(
                    Some(&name),
                    format!(
                        "has shape {:?}, but the architecture {} needs {expected_shape:?}",
                        tensor.shape(),
                        architecture
                    ),
                ));
            }
            checksum.update(tensor.data());
            tensors_only.update(tensor.data());
            expected_names.push(name);
        }
    }
    let mut unexpected: Vec<String> = file
        .names()
        .into_iter()
        .filter(|name| !expected_names.iter().any(|expected| expected == name))
        .map(str::to_owned)
        .collect();
    unexpected.sort();
    if let Some(name) = unexpected.first() {
        return Err(checkpoint_error(
            Some(name),
            format!(
                "unexpected: the architecture {architecture} has no such tensor (unexpected: {})",
                unexpected.join(", ")
            ),
        ));
    }
    let legacy = signature == Signature::IfPresent
        && stored_checksum.is_some_and(|stored| *stored == tensors_only.hex());
    if let Some(stored) = stored_checksum
        && *stored != checksum.hex()
        && !legacy
    {
        return Err(checkpoint_error(
            None,
            format!(
                "the architecture or the tensors' bytes are corrupt: checksum {} in the metadata, {} computed",
                stored,
                checksum.hex()
            ),
        ));
    }
    // Every tensor exists with the architecture's shape, so the file holds
    // every value: the allocation is bounded by the file's size.
    let mut values = Vec::new();
    values
        .try_reserve_exact(architecture.param_count())
        .map_err(|_| {
            Error::Core(backprop_core::Error::TooLarge {
                what: "checkpoint parameters",
                rows: architecture.param_count(),
                cols: 1,
            })
        })?;
    for name in &expected_names {
        if let Ok(tensor) = file.tensor(name) {
            values.extend(from_le_bytes::<T>(tensor.data()));
        }
    }
    let params = Params::from_values(&architecture, values)?;
    Ok(Network::new(architecture, params)?)
}

/// The architecture recorded in a checkpoint's metadata.
fn architecture_from(metadata: &HashMap<String, String>) -> Result<Architecture, Error> {
    let get = |key: &str| {
        metadata.get(key).ok_or_else(|| {
            checkpoint_error(
                None,
                format!("the metadata has no '{key}' entry, so the architecture is unknown"),
            )
        })
    };
    let invalid = |key: &str, value: &str, reason: String| {
        checkpoint_error(
            None,
            format!("metadata '{key}' = '{value}' is invalid: {reason}"),
        )
    };
    let widths_text = get(WIDTHS_KEY)?;
    let widths = widths_text
        .split(',')
        .map(|width| width.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(WIDTHS_KEY, widths_text, error.to_string()))?;
    let activations_text = get(ACTIVATIONS_KEY)?;
    let activations = activations_text
        .split(',')
        .map(|name| name.trim().parse::<Activation>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| invalid(ACTIVATIONS_KEY, activations_text, error.to_string()))?;
    let loss_text = get(LOSS_KEY)?;
    let loss = loss_text
        .trim()
        .parse::<Loss>()
        .map_err(|error| invalid(LOSS_KEY, loss_text, error.to_string()))?;
    Architecture::new(&widths, &activations, loss).map_err(|error| {
        checkpoint_error(
            None,
            format!("the metadata's architecture is invalid: {error}"),
        )
    })
}

/// Saves `network` as a safetensors file at `path`, replacing any file there.
pub fn save<T: Scalar>(network: &Network<T>, path: impl AsRef<Path>) -> Result<(), Error> {
    let path = path.as_ref();
    let bytes = to_bytes(network)?;
    std::fs::write(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads a network of precision `T` from the safetensors file at `path`
/// (see [`from_bytes`]).
pub fn load<T: Scalar>(path: impl AsRef<Path>) -> Result<Network<T>, Error> {
    from_bytes(&read(path.as_ref())?)
}

/// Loads a network like [`load`], accepting a file without a checksum (see
/// [`from_bytes_unsigned`]).
pub fn load_unsigned<T: Scalar>(path: impl AsRef<Path>) -> Result<Network<T>, Error> {
    from_bytes_unsigned(&read(path.as_ref())?)
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

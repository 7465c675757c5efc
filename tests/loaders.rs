//! Loaders that trust nothing: checkpoints whose metadata lies, gzip streams of several members, garbage or bombs.

use std::collections::HashMap;
use std::io::Write;

use backprop::train::{Error, checkpoint, digits};
use backprop::{Architecture, Error as CoreError, Network, ParamLocation};
use flate2::Compression;
use flate2::write::GzEncoder;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

// ------------------------------------------------------------- checkpoints

/// FNV-1a, 64 bits, as the checkpoint's checksum computes it.
fn fnv1a(chunks: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in chunks {
        for &byte in *chunk {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

/// A checkpoint of `tensors` (name, dtype, shape, bytes) and `metadata`,
/// signed with a checksum computed as the format defines it unless `sign` is false.
fn write(
    tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)],
    mut metadata: HashMap<String, String>,
    sign: bool,
) -> Vec<u8> {
    if sign {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        for key in [
            checkpoint::WIDTHS_KEY,
            checkpoint::ACTIVATIONS_KEY,
            checkpoint::LOSS_KEY,
        ] {
            let value = metadata.get(key).cloned().unwrap_or_default();
            chunks.push(format!("{key}={value}\n").into_bytes());
        }
        // Tensors in layer order, weights before biases, as the loader reads them.
        let mut ordered: Vec<_> = tensors.iter().collect();
        ordered.sort_by_key(|(name, ..)| {
            let layer: usize = name
                .split('.')
                .nth(1)
                .and_then(|l| l.parse().ok())
                .unwrap_or(usize::MAX);
            (layer, name.ends_with("bias"))
        });
        chunks.extend(ordered.iter().map(|(.., bytes)| bytes.clone()));
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        metadata.insert(checkpoint::CHECKSUM_KEY.to_owned(), fnv1a(&slices));
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            let view = TensorView::new(*dtype, shape.clone(), data).expect("a valid tensor");
            ((*name).to_owned(), view)
        })
        .collect();
    safetensors::serialize(views, Some(metadata)).expect("serialising to memory")
}

fn metadata(widths: &str, activations: &str, loss: &str) -> HashMap<String, String> {
    HashMap::from([
        (checkpoint::WIDTHS_KEY.to_owned(), widths.to_owned()),
        (
            checkpoint::ACTIVATIONS_KEY.to_owned(),
            activations.to_owned(),
        ),
        (checkpoint::LOSS_KEY.to_owned(), loss.to_owned()),
    ])
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A 2-1 identity network's tensors with these weights and bias.
fn two_one(weights: [f32; 2], bias: f32) -> Vec<(&'static str, Dtype, Vec<usize>, Vec<u8>)> {
    vec![
        (
            "layers.0.weight",
            Dtype::F32,
            vec![1, 2],
            f32_bytes(&weights),
        ),
        ("layers.0.bias", Dtype::F32, vec![1], f32_bytes(&[bias])),
    ]
}

fn checkpoint_reason(result: Result<Network<f32>, Error>) -> (Option<String>, String) {
    match result {
        Err(Error::Checkpoint { tensor, reason }) => (tensor, reason),
        other => panic!("expected a checkpoint error, got {other:?}"),
    }
}

#[test]
fn the_signing_in_these_tests_matches_the_saver() {
    let tensors = two_one([0.5, -0.25], 1.0);
    let bytes = write(&tensors, metadata("2,1", "identity", "mse"), true);
    let network = checkpoint::from_bytes::<f32>(&bytes).expect("a signed file loads");
    assert_eq!(network.params().as_slice(), &[0.5, -0.25, 1.0]);
    assert_eq!(checkpoint::to_bytes(&network).unwrap().len(), bytes.len());
}

#[test]
fn metadata_that_claims_huge_widths_fails_before_allocating() {
    // Regression inputs: a file of about 100 bytes whose metadata claims
    // 2^40 (once an abort) or 2^62 (once a "capacity overflow" panic)
    // inputs, signed so that the claim is what the loader must refute.
    for widths in [
        "1099511627776,1",
        "4611686018427387904,1",
        "1,1099511627776,1",
        "18446744073709551615,1",
    ] {
        let activations = if widths.split(',').count() == 3 {
            "identity,identity"
        } else {
            "identity"
        };
        let bytes = write(&[], metadata(widths, activations, "mse"), true);
        assert!(bytes.len() < 256, "{}", bytes.len());
        let result = checkpoint::from_bytes::<f32>(&bytes);
        match result {
            Err(Error::Checkpoint {
                tensor: Some(tensor),
                reason,
            }) => {
                assert_eq!(tensor, "layers.0.weight", "{widths}");
                assert!(reason.contains("missing"), "{reason}");
            }
            Err(Error::Checkpoint {
                tensor: None,
                reason,
            }) => {
                // usize::MAX inputs: the parameter count does not fit usize.
                assert!(
                    reason.contains("does not fit in usize"),
                    "{widths}: {reason}"
                );
            }
            other => panic!("{widths}: {other:?}"),
        }
        // The same claim with tensors of a small network: the shapes are refuted.
        let bytes = write(
            &two_one([1.0, 2.0], 0.0),
            metadata(widths, activations, "mse"),
            true,
        );
        let (tensor, reason) = checkpoint_reason(checkpoint::from_bytes::<f32>(&bytes));
        if let Some(tensor) = tensor {
            assert_eq!(tensor, "layers.0.weight", "{widths}");
            assert!(reason.contains("has shape [1, 2]"), "{reason}");
        }
    }
}

#[test]
fn the_checksum_is_required_and_covers_the_architecture() {
    let tensors = two_one([0.5, -0.25], 1.0);
    let signed = write(&tensors, metadata("2,1", "identity", "mse"), true);
    let (_, header) = SafeTensors::read_metadata(&signed).unwrap();
    let stored = header.metadata().clone().unwrap()[checkpoint::CHECKSUM_KEY].clone();

    // The activation edited in the metadata, the checksum kept: refused.
    let mut edited = metadata("2,1", "sigmoid", "mse");
    edited.insert(checkpoint::CHECKSUM_KEY.to_owned(), stored.clone());
    let bytes = write(&tensors, edited, false);
    let (tensor, reason) = checkpoint_reason(checkpoint::from_bytes(&bytes));
    assert_eq!(tensor, None);
    assert!(
        reason.contains("checksum") && reason.contains(&stored),
        "{reason}"
    );

    // The checksum removed and a weight changed (to -3e38): refused unless
    // the caller asks for the unsigned mode by name.
    let unsigned = write(
        &two_one([-3e38, -0.25], 1.0),
        metadata("2,1", "identity", "mse"),
        false,
    );
    let (tensor, reason) = checkpoint_reason(checkpoint::from_bytes(&unsigned));
    assert_eq!(tensor, None);
    assert!(reason.contains("no 'checksum_fnv1a64' entry"), "{reason}");
    let network = checkpoint::from_bytes_unsigned::<f32>(&unsigned).unwrap();
    assert_eq!(network.params().as_slice()[0], -3e38);
    // The unsigned mode still checks a checksum that is there.
    let mut wrong = metadata("2,1", "identity", "mse");
    wrong.insert(
        checkpoint::CHECKSUM_KEY.to_owned(),
        "0123456789abcdef".to_owned(),
    );
    let bytes = write(&tensors, wrong, false);
    let (_, reason) = checkpoint_reason(checkpoint::from_bytes_unsigned(&bytes));
    assert!(reason.contains("0123456789abcdef"), "{reason}");

    // A file saved before the checksum covered the architecture (the
    // tensors' bytes alone): refused signed, read unsigned.
    let tensor_bytes: Vec<&[u8]> = tensors.iter().map(|(.., bytes)| bytes.as_slice()).collect();
    let mut legacy = metadata("2,1", "identity", "mse");
    legacy.insert(checkpoint::CHECKSUM_KEY.to_owned(), fnv1a(&tensor_bytes));
    let bytes = write(&tensors, legacy, false);
    let (_, reason) = checkpoint_reason(checkpoint::from_bytes(&bytes));
    assert!(reason.contains("checksum"), "{reason}");
    let network = checkpoint::from_bytes_unsigned::<f32>(&bytes).unwrap();
    assert_eq!(network.params().as_slice(), &[0.5, -0.25, 1.0]);

    // Files on disk: the same rules through load and load_unsigned.
    let dir = std::env::temp_dir().join(format!("backprop-loaders-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("unsigned.safetensors");
    std::fs::write(&path, &unsigned).unwrap();
    assert!(matches!(
        checkpoint::load::<f32>(&path),
        Err(Error::Checkpoint { tensor: None, .. })
    ));
    assert!(checkpoint::load_unsigned::<f32>(&path).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_checkpoint_holding_nan_or_infinity_is_refused_naming_the_parameter() {
    for (bad, signed) in [
        (f32::NAN, true),
        (f32::INFINITY, false),
        (f32::NEG_INFINITY, true),
    ] {
        let bytes = write(
            &two_one([0.5, 0.25], bad),
            metadata("2,1", "identity", "mse"),
            signed,
        );
        let result = if signed {
            checkpoint::from_bytes::<f32>(&bytes)
        } else {
            checkpoint::from_bytes_unsigned::<f32>(&bytes)
        };
        match result {
            Err(Error::Core(CoreError::NonFiniteParameter { location, value })) => {
                assert_eq!(location, ParamLocation::Bias { layer: 0, index: 0 });
                assert!(
                    value.is_nan() == bad.is_nan() && (value.is_nan() || value == f64::from(bad))
                );
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // In f64, a value that overflows f32 is fine; narrowing it is reported.
    let network = Network::<f64>::new(
        Architecture::new(
            &[2, 1],
            &[backprop::Activation::Identity],
            backprop::Loss::Mse,
        )
        .unwrap(),
        backprop::Params::from_values(
            &Architecture::new(
                &[2, 1],
                &[backprop::Activation::Identity],
                backprop::Loss::Mse,
            )
            .unwrap(),
            vec![1e300, 0.0, 0.0],
        )
        .unwrap(),
    )
    .unwrap();
    let bytes = checkpoint::to_bytes(&network.to_precision::<f32>()).unwrap_err();
    assert!(
        matches!(bytes, Error::Core(CoreError::NonFiniteParameter { .. })),
        "{bytes:?}"
    );
}

// ------------------------------------------------------------- digits

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn lines(labels: &[usize]) -> String {
    labels
        .iter()
        .map(|label| {
            let mut fields: Vec<String> = (0..64).map(|i| (i % 17).to_string()).collect();
            fields.push(label.to_string());
            fields.join(",") + "\n"
        })
        .collect()
}

#[test]
fn every_gzip_member_is_read() {
    // `cat a.gz b.gz`: both parts, in order.
    let mut bytes = gzip(lines(&[1, 2]).as_bytes());
    bytes.extend(gzip(lines(&[3, 4, 5]).as_bytes()));
    let data = digits::parse::<f32>(&bytes[..]).unwrap();
    assert_eq!(data.rows(), 5);
    assert_eq!(data.labels(), Some(&[1, 2, 3, 4, 5][..]));
}

#[test]
fn trailing_garbage_after_the_last_member_is_an_error() {
    for garbage in [&b"garbage!"[..], &[0u8; 16][..], &[0x1f, 0x8b][..]] {
        let mut bytes = gzip(lines(&[1, 2]).as_bytes());
        bytes.extend_from_slice(garbage);
        let error = digits::parse::<f32>(&bytes[..]).unwrap_err();
        match error {
            Error::Data { reason, .. } => assert!(reason.contains("gzip"), "{reason}"),
            other => panic!("{garbage:?}: {other:?}"),
        }
    }
}

#[test]
fn a_gzip_bomb_is_refused_after_the_limit() {
    // 4 MiB of zeros compress to about 4 KiB; the limit here is 1 MiB.
    let bomb = gzip(&vec![0; 4 << 20]);
    assert!(bomb.len() < 64 << 10);
    let error = digits::parse_with_limit::<f32>(&bomb[..], 1 << 20).unwrap_err();
    assert!(
        matches!(error, Error::DecompressedTooLarge { limit } if limit == 1 << 20),
        "{error:?}"
    );
    // The default limit: 64 MiB, past which even valid-looking lines stop.
    let mut big = lines(&[1]).into_bytes();
    big.resize((digits::MAX_DECOMPRESSED_BYTES + 1) as usize, b'\n');
    let error = digits::parse::<f32>(&gzip(&big)[..]).unwrap_err();
    assert!(
        matches!(error, Error::DecompressedTooLarge { limit } if limit == digits::MAX_DECOMPRESSED_BYTES),
        "{error:?}"
    );
    // Exactly at the limit is fine.
    big.truncate(digits::MAX_DECOMPRESSED_BYTES as usize);
    assert_eq!(digits::parse::<f32>(&gzip(&big)[..]).unwrap().rows(), 1);
    assert!(error.to_string().contains("67108864"), "{error}");
}

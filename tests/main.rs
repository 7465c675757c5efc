//! The workspace's one integration-test binary: every backend against the oracles and each other.

mod backends;
mod boxed;
mod conformance;
mod controls;
mod declines;
mod driver;
mod errors;
mod facade;
mod faer_backend;
mod hardening;
mod kinks;
mod loaders;
mod rayon_backend;
mod saturation;
mod training;

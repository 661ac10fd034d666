//! Thin commands, grouped by domain: convert arguments, call the engine or the job registry, return.
//! Jobs end their streams with `finished` or `failed` in [`crate::jobs::JobRegistry::start`].

pub mod app;
pub mod datasets;
pub mod evaluate;
pub mod generation;
pub mod models;
pub mod sharing;
pub mod training;

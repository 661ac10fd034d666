//! Reading a dataset folder made by [`write`](super::write()) back: its documents, and for training
//! the manifest and the split it recorded.

use std::path::Path;

use super::{DatasetManifest, Unit};
use crate::data::dataset::Split;
use crate::data::unit;
use crate::{Error, Result};

/// Reads the units of a dataset folder written by [`write`](super::write()).
pub fn read_units(dir: &Path) -> Result<Vec<Unit>> {
    Ok(unit::read_lines(&dir.join("documents.jsonl"))?
        .into_iter()
        .map(|(u, _)| u)
        .collect())
}

/// A dataset folder as training reads it: its units, the options it was prepared with, and the
/// split it made, so a run trained from it learns from and validates on the same text.
pub struct DatasetUnits {
    pub units: Vec<Unit>,
    pub manifest: DatasetManifest,
    /// Per unit, whether it is held out; `None` for a dataset made before the split was recorded
    /// (the manifest's `val_frac` and `seed` then split it again).
    pub is_val: Option<Vec<bool>>,
}

impl DatasetUnits {
    /// The division of [`Self::units`] the dataset made.
    pub fn split(&self) -> Split<'_> {
        let opts = &self.manifest.options;
        match &self.is_val {
            Some(is_val) => Split::Given {
                is_val,
                // A lone document was split by holding out its end.
                tail: (self.manifest.split == "tail" && is_val.len() == 1).then_some(opts.val_frac),
            },
            None => Split::Seeded {
                val_frac: opts.val_frac,
                seed: opts.seed,
            },
        }
    }
}

/// Reads a dataset folder written by [`write`](super::write()) for training.
pub fn read_dataset(dir: &Path) -> Result<DatasetUnits> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let manifest: DatasetManifest = serde_json::from_str(&text).map_err(|e| {
        Error::file(
            &path,
            format!("is not a dataset manifest ({e}); prepare the dataset again"),
        )
    })?;
    let (units, split): (Vec<Unit>, Vec<Option<bool>>) =
        unit::read_lines(&dir.join("documents.jsonl"))?
            .into_iter()
            .unzip();
    let is_val = split.into_iter().collect::<Option<Vec<bool>>>();
    Ok(DatasetUnits {
        units,
        manifest,
        is_val,
    })
}

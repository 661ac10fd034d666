//! `tunesmith download MODEL_ID`: fetch into the hub cache and print the local folder.

use anyhow::Result;
use tunesmith_engine::{hub, paths};

use super::{finish, Sink};
use crate::args::DownloadArgs;

pub fn run(args: DownloadArgs) -> Result<()> {
    let mut sink = Sink::new(args.json);
    let result = hub::download(&args.model_id, &paths::hub_cache(), &mut sink);
    let dir = finish(&mut sink, result)?;
    if !args.json {
        println!("{}", dir.display());
    }
    Ok(())
}

//! `mnemo-server reembed --model-dir DIR --model-id ID`: every vector of the SQLite
//! database rewritten with another model, resumably (`storage::sqlite::reembed`).
//! The database keeps its old model until the last vector is written. Without a
//! terminal (a service's journal, a pipe) the progress bar is hidden and each committed
//! batch prints a plain line instead, so a long run shows how far it came and where a
//! rerun will resume.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::progress_bar;
use crate::config::Config;
use crate::embed::{EmbedModel, FastEmbedModel, ModelFiles};
use crate::storage::sqlite::reembed;

#[derive(Debug, Clone, clap::Args)]
pub struct ReembedArgs {
    /// Folder of the new model (model.onnx and its tokenizer files).
    #[arg(long)]
    pub model_dir: PathBuf,
    /// The name the database will pin for the new model; serve it afterwards with the
    /// same MNEMO_MODEL_DIR and MNEMO_MODEL_ID.
    #[arg(long)]
    pub model_id: String,
}

pub fn run(config: &Config, args: ReembedArgs, out: &mut impl Write) -> anyhow::Result<()> {
    if config.database_url.is_some() {
        anyhow::bail!(
            "reembed works on a SQLite database; with MNEMO_DATABASE_URL (PostgreSQL), export \
             (GET /api/export, without vectors) and import into a server of the new model"
        );
    }
    let files = ModelFiles {
        model_dir: args.model_dir.clone(),
        ort_dylib: config.model_files().ort_dylib,
    };
    let mut model = FastEmbedModel::load(&files, &args.model_id, config.embed_threads())?;
    let target = model.spec().clone();
    let path = config.database_path();
    let bar = progress_bar(0, "memories");
    let plain = !std::io::stderr().is_terminal();
    let done = reembed(
        &path,
        &target,
        |texts| model.embed(texts).map_err(|e| e.to_string()),
        |done, total| {
            bar.set_length(total);
            bar.set_position(done);
            if plain {
                eprintln!("reembed: {done} of {total} memories have their new vectors");
            }
        },
    )
    .with_context(|| format!("re-embedding {}", path.display()))?;
    bar.finish_and_clear();
    writeln!(
        out,
        "Re-embedded {} memories with {:?} ({} dimensions; {} embedded now, {} by an earlier run), \
         replacing {:?} ({} dimensions). Start the server with MNEMO_MODEL_DIR={} MNEMO_MODEL_ID={}.",
        done.total,
        target.model_id,
        target.dimension,
        done.embedded,
        done.resumed,
        done.from.model_id,
        done.from.dimension,
        args.model_dir.display(),
        target.model_id,
    )?;
    Ok(())
}

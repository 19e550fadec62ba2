//! `paramscope export`: the model as a `.safetensors` file PyTorch's `load_model` reads.

use super::ExportArgs;
use crate::io::model_file::save_model;

pub(super) fn run(args: &ExportArgs) -> Result<String, String> {
    let model = args.model.load()?;
    save_model(&model, &args.output).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} ({} tensors, {} parameters)",
        crate::text::escape(&args.output.display().to_string()),
        model.store.len(),
        model.total_params()
    );
    Ok(String::new())
}

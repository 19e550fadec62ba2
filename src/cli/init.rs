//! `paramscope init`: re-initialize every Linear under a module, as `net[at].apply(fn)`, and save.

use super::{CliError, InitArgs};
use crate::checkpoint::save::save_model;
use crate::model::init::{InitPlan, InitScheme};
use crate::text::escape;

pub(super) fn run(args: &InitArgs) -> Result<String, CliError> {
    let parse = |flag: &'static str, text: &str| {
        text.parse::<InitScheme>()
            .map_err(|source| CliError::Scheme {
                flag,
                value: text.to_owned(),
                source,
            })
    };
    let plan = InitPlan {
        weight: Some(parse("weight", &args.weight)?),
        bias: args.bias.as_deref().map(|b| parse("bias", b)).transpose()?,
        seed: args.model.seed,
    };
    let mut model = args.model.load()?;
    let report = plan.apply(&mut model, &args.at)?;
    if report.written.is_empty() {
        return Err(CliError::NothingToInit(args.at.clone()));
    }
    save_model(&model, &args.output)?;
    let names: Vec<_> = report
        .written
        .iter()
        .map(|(n, _)| escape(n).into_owned())
        .collect();
    eprintln!(
        "initialized {}; wrote {}",
        names.join(", "),
        escape(&args.output.display().to_string())
    );
    Ok(String::new())
}

//! `pipai templates`: the strategy template catalog, as the API validates it.

use pipai_engine::templates::{catalog, ParamKind};

use crate::error::CliError;

/// List the strategy templates and their params (name, type, required, default, range).
///
/// This is the catalog every job config is validated against, here and in the API.
#[derive(clap::Args)]
pub struct TemplatesArgs {
    /// Print the catalog as JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TemplatesArgs) -> Result<(), CliError> {
    if args.json {
        println!("{}", serde_json::to_string_pretty(catalog()).expect("catalog serializes"));
        return Ok(());
    }
    for t in catalog() {
        let symbols = if t.min_symbols == t.max_symbols {
            format!("{} symbol", t.min_symbols)
        } else {
            format!("{} to {} symbols", t.min_symbols, t.max_symbols)
        };
        println!("{}  ({}, {symbols})\n  {}", t.id, t.name, t.description);
        for p in t.params {
            let kind = match p.kind {
                ParamKind::Integer { min, max } => format!("integer {min}..={max}"),
                ParamKind::Decimal { min, min_exclusive, max, max_exclusive } => {
                    let lo = if min_exclusive { "(" } else { "[" };
                    let hi = if max_exclusive { ")" } else { "]" };
                    format!("decimal string {lo}{min}, {}{hi}", max.unwrap_or("inf"))
                }
                ParamKind::Enum { values } => format!("one of {}", values.join("|")),
            };
            let req = match p.default {
                None => "required".to_string(),
                Some(d) => format!("default {d}"),
            };
            println!("    {:<16} {:<34} {:<20} {}", p.name, kind, req, p.description);
        }
        println!();
    }
    Ok(())
}

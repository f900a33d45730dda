//! The hotline application: its command line, its settings and the one
//! assembly of its parts ([`app::Application`]), shared by the binary
//! (`main.rs`, which adds logging, traces and the one-shot commands) and by
//! the tests, so that what the tests start is what the binary runs.

pub mod app;
mod bounded;
mod ca;
pub mod cli;
pub mod config;
mod demo;
mod env_text;
pub mod registry_file;

use clap::CommandFactory;

/// Every `HOTLINE_*` variable the service reads: one per setting, and the
/// command line's own (`HOTLINE_CONFIG`, `HOTLINE_LOG_FORMAT`).
pub fn variables() -> Vec<String> {
    let mut variables: Vec<String> = config::settings().iter().map(|s| config::variable(s)).collect();
    variables.extend(command_line_variables());
    variables.sort();
    variables
}

/// The variables the command line reads (clap's `env = …`), from clap's own description of it.
pub fn command_line_variables() -> Vec<String> {
    fn walk(command: &clap::Command, out: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env().and_then(|e| e.to_str()) {
                out.push(env.to_owned());
            }
        }
        for sub in command.get_subcommands() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&cli::Cli::command(), &mut out);
    out.sort();
    out.dedup();
    out
}

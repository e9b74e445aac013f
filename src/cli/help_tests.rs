//! The help contract (issue 17): every argument of every subcommand has help text, every leaf
//! subcommand shows an example, and clap's own consistency checks pass.

use clap::CommandFactory as _;

use super::Cli;

/// Walks `cmd` and its subcommands depth first, with the path from the root.
fn walk(cmd: &clap::Command, path: &mut Vec<String>, seen: &mut Vec<(String, clap::Command)>) {
    path.push(cmd.get_name().to_string());
    seen.push((path.join(" "), cmd.clone()));
    // clap's generated `help` subcommands are not ours to document.
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        walk(sub, path, seen);
    }
    path.pop();
}

fn all_commands() -> Vec<(String, clap::Command)> {
    let mut root = Cli::command();
    root.build();
    let mut seen = Vec::new();
    walk(&root, &mut Vec::new(), &mut seen);
    seen
}

#[test]
fn clap_debug_asserts_hold() {
    Cli::command().debug_assert();
}

#[test]
fn every_argument_has_help_text() {
    let mut missing = Vec::new();
    for (path, cmd) in all_commands() {
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                missing.push(format!("{path}: {id}"));
            }
        }
        if cmd.get_about().is_none() && path != "clawgate" {
            missing.push(format!("{path}: (no about)"));
        }
    }
    assert!(missing.is_empty(), "arguments without help: {missing:#?}");
}

#[test]
fn every_subcommand_shows_an_example() {
    let mut missing = Vec::new();
    let commands = all_commands();
    for (path, cmd) in &commands {
        let has = |c: &clap::Command| {
            c.get_after_help()
                .is_some_and(|h| h.to_string().contains("clawgate"))
        };
        // A leaf inherits its parent's examples when it has none of its own.
        let parent = path.rsplit_once(' ').map(|(p, _)| p);
        let parent_has = parent.is_some_and(|p| commands.iter().any(|(q, c)| q == p && has(c)));
        if cmd.get_subcommands().next().is_none() && !has(cmd) && !parent_has {
            missing.push(path.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "subcommands without an example: {missing:#?}"
    );
}

#[test]
fn enum_flags_list_their_values() {
    let run = Cli::command()
        .find_subcommand_mut("run")
        .map(|c| c.render_help().to_string())
        .unwrap_or_default();
    for needle in [
        "loopback, lan, custom, tailnet, auto",
        "token, password, none",
        "off, serve, funnel",
    ] {
        assert!(
            run.contains(needle),
            "`clawgate run --help` lacks {needle:?}:\n{run}"
        );
    }
}

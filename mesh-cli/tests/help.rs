//! `mesh --help` lists every command, nested ones included, so a new user finds `certs issue`
//! and `xds serve` from the first screen. Checked against the command tree itself: every
//! command `mesh --help` names, and every subcommand those commands' own help names.
#![allow(clippy::unwrap_used)] // Test code: a panic is a failed test.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mesh"))
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The command names in the `Commands:` section of a help text (without `help`).
fn commands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_owned)
        .collect()
}

#[test]
fn top_level_help_lists_every_command_and_subcommand() {
    let top = help(&[]);
    let index: Vec<&str> = top
        .lines()
        .skip_while(|l| !l.starts_with("All commands:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect();
    assert!(!index.is_empty(), "no command index in:\n{top}");
    let listed = |path: &str| {
        index.iter().any(|l| {
            l.trim_start()
                .strip_prefix(path)
                .is_some_and(|r| r.starts_with(' '))
        })
    };
    let top_commands = commands(&top);
    for expected in ["check", "explain", "certs", "top", "xds"] {
        assert!(
            top_commands.iter().any(|c| c == expected),
            "{expected}: {top}"
        );
    }
    let mut leaves = 0;
    for command in &top_commands {
        let subcommands = commands(&help(&[command.as_str()]));
        if subcommands.is_empty() {
            assert!(listed(&format!("mesh {command}")), "mesh {command}:\n{top}");
            leaves += 1;
        }
        for sub in subcommands {
            assert!(
                listed(&format!("mesh {command} {sub}")),
                "mesh {command} {sub}:\n{top}"
            );
            leaves += 1;
        }
    }
    assert_eq!(index.len(), leaves, "one line per command:\n{top}");
    assert!(
        listed("mesh certs issue") && listed("mesh xds serve"),
        "{top}"
    );
}

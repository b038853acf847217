//! What of a command goes to the log: never a secret. Values of options
//! that carry one (`integrator password X --set SECRET`, `--password=…`)
//! and the value of `config set PATH VALUE` (any path may be a password
//! field; the change itself is in the config history) are replaced by
//! [`HIDDEN`]. Passwords read from stdin (`user add`, `user passwd`) are
//! not in the arguments at all.

pub const HIDDEN: &str = "<hidden>";

/// Options whose value is a secret.
const SECRET_OPTIONS: &[&str] = &[
    "--set",
    "--password",
    "--passphrase",
    "--secret",
    "--token",
    "--psk",
    "--private-key",
];

/// Options of `config set` that take a value which is not the one set.
const MESSAGE_OPTIONS: &[&str] = &["-m", "--message"];

/// The command's words as they may be logged.
pub fn loggable(args: &[String]) -> String {
    let config_set = args.len() > 2 && args[0] == "config" && args[1] == "set";
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_secret = false;
    let mut next_is_message = false;
    let mut positional = 0;
    for (i, a) in args.iter().enumerate() {
        let word = a.as_str();
        if next_is_secret {
            next_is_secret = false;
            out.push(HIDDEN.to_string());
            continue;
        }
        if next_is_message {
            next_is_message = false;
            out.push(word.to_string());
            continue;
        }
        if let Some((name, _)) = word.split_once('=')
            && SECRET_OPTIONS.contains(&name)
        {
            out.push(format!("{name}={HIDDEN}"));
            continue;
        }
        next_is_secret = SECRET_OPTIONS.contains(&word);
        next_is_message = config_set && MESSAGE_OPTIONS.contains(&word);
        let option = word.starts_with('-');
        if config_set && i >= 2 && !option {
            positional += 1;
            // config set PATH VALUE: the second word after `set`.
            if positional == 2 {
                out.push(HIDDEN.to_string());
                continue;
            }
        }
        out.push(word.to_string());
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(line: &str) -> String {
        let args: Vec<String> = line.split(' ').map(str::to_string).collect();
        loggable(&args)
    }

    #[test]
    fn secret_options_lose_their_values() {
        assert_eq!(
            shown("integrator password api --set hunter2"),
            "integrator password api --set <hidden>"
        );
        assert_eq!(
            shown("integrator password api --set=hunter2"),
            "integrator password api --set=<hidden>"
        );
        assert_eq!(
            shown("x --password p --token=t"),
            "x --password <hidden> --token=<hidden>"
        );
    }

    #[test]
    fn config_set_shows_the_path_not_the_value() {
        assert_eq!(
            shown("config set pgha.backup_controller.storage_ssh_pwd hunter2"),
            "config set pgha.backup_controller.storage_ssh_pwd <hidden>"
        );
        assert_eq!(
            shown("config set -m why node.hostname n2"),
            "config set -m why node.hostname <hidden>"
        );
    }

    #[test]
    fn commands_without_secrets_are_logged_whole() {
        assert_eq!(shown("status"), "status");
        assert_eq!(shown("config rollback 3"), "config rollback 3");
        assert_eq!(shown("user passwd admin"), "user passwd admin");
        assert_eq!(shown("integrator password api"), "integrator password api");
    }
}

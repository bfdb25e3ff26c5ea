//! Config fields given as `key=value` mount options (`mount -o n_threads=8,...`): each
//! is checked on its own against the config's schema, so a typo is refused naming the
//! option, then merged over the file's table before the whole is deserialized and
//! validated like a file.

use std::path::Path;

use super::{Config, ConfigError};

impl Config {
    /// Parses the config file text `text` (empty: defaults) with `overrides` applied on
    /// top, in order. A key is a top-level field (`n_threads`) or a field of a table
    /// (`snapshots.hourly`); a value is read as TOML (`8`, `true`) and, where that does
    /// not fit the field, as a string (`/var/lib/verfsnext`).
    ///
    /// Fails naming the option when a key is not a field or its value has the wrong type,
    /// and like [`Config::from_toml`] otherwise.
    pub fn from_toml_with(
        text: &str,
        path: &Path,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        for (key, value) in overrides {
            let one = override_table(key, value)?;
            merge(&mut table, one);
        }
        let cfg: Config = table.try_into().map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: one_line(&e.to_string()),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// `key = value` as a table that deserializes into a [`Config`] on its own: the value
/// typed as TOML if that fits, else as a string.
fn override_table(key: &str, value: &str) -> Result<toml::Table, ConfigError> {
    let bad = |message: String| ConfigError::Option {
        option: format!("{key}={value}"),
        message,
    };
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(bad("empty field name".into()));
    }
    let typed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"));
    let candidates = typed
        .into_iter()
        .chain(std::iter::once(toml::Value::String(value.to_string())));
    let mut last = String::new();
    for v in candidates {
        let table = nest(key, v);
        match toml::Value::Table(table.clone()).try_into::<Config>() {
            Ok(_) => return Ok(table),
            Err(e) => last = one_line(&e.to_string()),
        }
    }
    Err(bad(last))
}

/// `a.b.c` and a value as `{a = {b = {c = value}}}`.
fn nest(key: &str, value: toml::Value) -> toml::Table {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut table = toml::Table::new();
    table.insert(last.to_string(), value);
    for p in parts.into_iter().rev() {
        let mut outer = toml::Table::new();
        outer.insert(p.to_string(), toml::Value::Table(table));
        table = outer;
    }
    table
}

/// Writes `over` into `base`, merging tables key by key and replacing everything else.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn one_line(s: &str) -> String {
    s.trim().replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(text: &str, opts: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let o: Vec<(String, String)> = opts
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_toml_with(text, Path::new("t.toml"), &o)
    }

    #[test]
    fn options_override_the_file_and_keep_the_rest() {
        let c = with(
            "n_threads = 2\nfsname = \"a\"\n[snapshots]\ndaily = 3\n",
            &[
                ("n_threads", "8"),
                ("data_dir", "/srv/data"),
                ("snapshots.hourly", "5"),
                ("read_only", "true"),
            ],
        )
        .unwrap();
        assert_eq!(c.n_threads, 8);
        assert_eq!(c.fsname, "a");
        assert_eq!(c.data_dir, Path::new("/srv/data"));
        assert_eq!(c.snapshots.hourly, 5);
        assert_eq!(c.snapshots.daily, 3);
        assert!(c.read_only);
    }

    #[test]
    fn a_number_may_be_a_string_field() {
        assert_eq!(with("", &[("fsname", "123")]).unwrap().fsname, "123");
    }

    #[test]
    fn unknown_or_mistyped_options_are_named_on_one_line() {
        for (k, v, needle) in [
            ("n_thread", "3", "n_thread=3"),
            ("n_threads", "many", "n_threads=many"),
            ("snapshots.yearly", "1", "snapshots.yearly=1"),
            ("", "1", "=1"),
        ] {
            let e = with("", &[(k, v)]).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn out_of_range_values_are_refused_after_merging() {
        let e = with("", &[("n_threads", "0")]).unwrap_err().to_string();
        assert!(e.contains("n_threads"), "{e}");
    }
}

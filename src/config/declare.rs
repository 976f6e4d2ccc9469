//! How a setting is declared once (see `settings!` in `config/mod.rs`) and
//! read from its three layers: a flag, its `STUDIO_*` variable (clap reads
//! both; the flag wins), then the TOML file, then its default.

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches};

use super::file::FileValues;
use super::parse;

/// How a setting is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One value; given twice, the last counts.
    One,
    /// Repeatable (`--flag a --flag b`); its variable and file key take a
    /// comma-separated list or (file) a list.
    Many,
    /// On or off: `--flag` alone is on, `--flag=false` off.
    Switch,
}

#[derive(Debug, Clone, Copy)]
pub struct Decl {
    pub flag: &'static str,
    pub env: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

impl Decl {
    pub fn arg(&self) -> Arg {
        let a = Arg::new(self.flag)
            .long(self.flag)
            .env(self.env)
            .help(self.help.trim());
        match self.kind {
            Kind::One => a.num_args(1).action(ArgAction::Set),
            Kind::Many => a.num_args(1).action(ArgAction::Append).value_delimiter(','),
            Kind::Switch => a
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true")
                .action(ArgAction::Set),
        }
    }

    /// The raw values from the highest layer that has any.
    fn raw(&self, m: &ArgMatches, file: &FileValues) -> Option<Vec<String>> {
        match m.value_source(self.flag) {
            Some(ValueSource::CommandLine) | Some(ValueSource::EnvVariable) => m
                .get_many::<String>(self.flag)
                .map(|v| v.cloned().collect()),
            _ => file.get(self.flag).cloned(),
        }
    }

    fn fail(&self, e: String) -> String {
        format!("--{} ({}): {e}", self.flag, self.env)
    }
}

/// A [`Kind::One`] setting.
pub fn one<T>(
    d: &Decl,
    m: &ArgMatches,
    file: &FileValues,
    parse: impl Fn(&str) -> Result<T, String>,
    default: T,
) -> Result<T, String> {
    match d.raw(m, file).and_then(|v| v.into_iter().last()) {
        Some(v) => parse(&v).map_err(|e| d.fail(e)),
        None => Ok(default),
    }
}

/// A [`Kind::One`] setting without a default.
pub fn optional<T>(
    d: &Decl,
    m: &ArgMatches,
    file: &FileValues,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    match d.raw(m, file).and_then(|v| v.into_iter().last()) {
        Some(v) if !v.is_empty() => parse(&v).map(Some).map_err(|e| d.fail(e)),
        _ => Ok(None),
    }
}

/// A [`Kind::Many`] setting (empty items are skipped: `A,,B` is two).
pub fn many<T>(
    d: &Decl,
    m: &ArgMatches,
    file: &FileValues,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Vec<T>, String> {
    d.raw(m, file)
        .unwrap_or_default()
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| parse(s).map_err(|e| d.fail(e)))
        .collect()
}

/// A [`Kind::Switch`] setting, off by default.
pub fn switch(d: &Decl, m: &ArgMatches, file: &FileValues) -> Result<bool, String> {
    one(d, m, file, parse::switch, false)
}

/// Declares every setting once: its field in [`Settings`](super::Settings),
/// its flag and variable, its help (the doc comment), how it is read and
/// its default. Nothing else lists the settings.
macro_rules! settings {
    (
        $(
            $(#[doc = $doc:literal])+
            $field:ident : $ty:ty = $kind:ident($flag:literal, $env:literal $(, $arg:expr)*);
        )+
    ) => {
        /// The resolved settings: built once at start-up, then passed down.
        #[derive(Debug, Clone)]
        pub struct Settings {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        /// Every setting's declaration, in the order of `--help`.
        pub const DECLARATIONS: &[$crate::config::declare::Decl] = &[
            $( $crate::config::declare::Decl {
                flag: $flag,
                env: $env,
                kind: settings!(@kind $kind),
                help: concat!($($doc),+),
            }, )+
        ];

        impl Settings {
            fn from_layers(
                m: &clap::ArgMatches,
                file: &$crate::config::file::FileValues,
            ) -> Result<Settings, String> {
                let decl = |flag: &str| {
                    DECLARATIONS
                        .iter()
                        .find(|d| d.flag == flag)
                        .expect("every setting is declared")
                };
                Ok(Settings {
                    $( $field: $crate::config::declare::$kind(decl($flag), m, file $(, $arg)*)?, )+
                })
            }
        }
    };
    (@kind one) => { $crate::config::declare::Kind::One };
    (@kind optional) => { $crate::config::declare::Kind::One };
    (@kind many) => { $crate::config::declare::Kind::Many };
    (@kind switch) => { $crate::config::declare::Kind::Switch };
}

pub(crate) use settings;

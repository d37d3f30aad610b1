//! Mode names, defined once: each mode enum is one table of (variant, the name users write and
//! vland prints, the kernel's value), from which parsing, printing and the netlink value follow.

/// Declares a mode enum from its table; the first row is the default.
macro_rules! modes {
    ($(#[$doc:meta])* $name:ident: $kernel:ty { $($variant:ident = $text:literal => $value:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant),+];

            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn kernel(self) -> $kernel {
                match self { $($name::$variant => $value),+ }
            }

            pub fn from_kernel(value: $kernel) -> Option<Self> {
                Self::ALL.iter().copied().find(|m| m.kernel() == value)
            }

            /// The mode named `text`, or an error listing the choices.
            pub fn parse(text: &str, what: &str) -> Result<Self, String> {
                Self::ALL.iter().copied().find(|m| m.name() == text).ok_or_else(|| {
                    format!("{what} `{text}` is not valid: use {}", $crate::drivers::modes::choices(Self::ALL.iter().map(|m| m.name())))
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::ALL[0]
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}
pub(crate) use modes;

/// "bridge (the default), vepa, private or source".
pub fn choices<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let mut out = format!("{} (the default)", names[0]);
    for (i, n) in names.iter().enumerate().skip(1) {
        out.push_str(if i + 1 == names.len() { " or " } else { ", " });
        out.push_str(n);
    }
    out
}

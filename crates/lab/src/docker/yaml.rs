//! A small YAML writer for compose files: block mappings and sequences in the order built,
//! strings always double-quoted (JSON string syntax, which YAML accepts), so the output is
//! deterministic and needs no YAML library.

/// A YAML value.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    /// A string, written double-quoted.
    Str(String),
    /// An integer.
    Int(i64),
    /// A boolean.
    Bool(bool),
    /// A sequence; written in flow style (`[a, b]`) when every item is a scalar.
    List(Vec<Yaml>),
    /// A mapping, in insertion order.
    Map(Vec<(String, Yaml)>),
}

impl From<&str> for Yaml {
    fn from(s: &str) -> Yaml {
        Yaml::Str(s.to_string())
    }
}

impl From<String> for Yaml {
    fn from(s: String) -> Yaml {
        Yaml::Str(s)
    }
}

impl From<bool> for Yaml {
    fn from(b: bool) -> Yaml {
        Yaml::Bool(b)
    }
}

impl From<i64> for Yaml {
    fn from(i: i64) -> Yaml {
        Yaml::Int(i)
    }
}

/// Build a mapping from (key, value) pairs.
pub fn map<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Yaml)>) -> Yaml {
    Yaml::Map(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

/// Build a sequence of strings.
pub fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Yaml {
    Yaml::List(items.into_iter().map(|s| Yaml::Str(s.as_ref().to_string())).collect())
}

fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::Str(s) => Some(serde_json::to_string(s).expect("string serializes")),
        Yaml::Int(i) => Some(i.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::List(l) if l.is_empty() => Some("[]".into()),
        Yaml::Map(m) if m.is_empty() => Some("{}".into()),
        _ => None,
    }
}

fn key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && k.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(k.to_ascii_lowercase().as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n")
        && k.parse::<f64>().is_err();
    if plain { k.to_string() } else { serde_json::to_string(k).expect("string serializes") }
}

fn write(out: &mut String, v: &Yaml, indent: usize) {
    let pad = " ".repeat(indent);
    match v {
        Yaml::Map(m) => {
            for (k, val) in m {
                match scalar(val) {
                    Some(s) => out.push_str(&format!("{pad}{}: {s}\n", key(k))),
                    None => match val {
                        Yaml::List(l) if l.iter().all(|x| matches!(x, Yaml::Str(_) | Yaml::Int(_) | Yaml::Bool(_))) => {
                            let items: Vec<String> = l.iter().map(|x| scalar(x).expect("scalar")).collect();
                            out.push_str(&format!("{pad}{}: [{}]\n", key(k), items.join(", ")));
                        }
                        _ => {
                            out.push_str(&format!("{pad}{}:\n", key(k)));
                            write(out, val, indent + 2);
                        }
                    },
                }
            }
        }
        Yaml::List(l) => {
            for item in l {
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        let mut inner = String::new();
                        write(&mut inner, item, indent + 2);
                        // The first line of the item goes after the dash.
                        let inner = inner.trim_start_matches(' ');
                        out.push_str(&format!("{pad}- {inner}"));
                    }
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other).expect("scalar"))),
    }
}

/// The YAML text of a document (a mapping at the top level), ending with a newline.
pub fn to_string(doc: &Yaml) -> String {
    let mut out = String::new();
    write(&mut out, doc, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_block_style_with_quoted_strings() {
        let doc = map([
            ("services", map([("dns", map([("image", "mtalab:local".into()), ("command", strs(["dns", "--listen", "10.10.10.2:53"]))]))])),
            ("networks", map([("lan", map([("internal", true.into()), ("ipam", map([("config", Yaml::List(vec![map([("subnet", "10.10.10.0/24".into())])]))]))]))])),
            ("volumes", map([("a-data", Yaml::Map(vec![]))])),
            ("sysctls", map([("net.ipv4.conf.all.rp_filter", "0".into())])),
            ("true", Yaml::Int(1)),
        ]);
        let text = to_string(&doc);
        assert_eq!(
            text,
            "services:\n  dns:\n    image: \"mtalab:local\"\n    command: [\"dns\", \"--listen\", \"10.10.10.2:53\"]\nnetworks:\n  lan:\n    internal: true\n    ipam:\n      config:\n        - subnet: \"10.10.10.0/24\"\nvolumes:\n  a-data: {}\nsysctls:\n  net.ipv4.conf.all.rp_filter: \"0\"\n\"true\": 1\n"
        );
        // JSON is YAML: every string went through JSON escaping.
        assert!(!text.contains('\''));
    }
}

//! The plugin's configuration: JSON, or empty for the defaults.
//!
//! ```json
//! {"tables": [254]}
//! ```
//!
//! `tables`: the routing tables to forward by, in the order the kernel's
//! policy rules look them up (default: main, 254). The local table (255)
//! is always followed and always wins, so it is not listed. Unknown keys
//! are refused: a misspelt key must not silently mean the default.

use serde::Deserialize;

use crate::candidates::LOCAL_TABLE;

/// The main table, the default.
const MAIN_TABLE: u32 = 254;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "main_table")]
    pub tables: Vec<u32>,
}

fn main_table() -> Vec<u32> {
    vec![MAIN_TABLE]
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = match text.trim() {
            "" => Config {
                tables: main_table(),
            },
            json => serde_json::from_str(json).map_err(|e| format!("xdp-fib config: {e}"))?,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.tables.is_empty() {
            return Err("xdp-fib config: \"tables\" names no table".to_string());
        }
        for (i, table) in self.tables.iter().enumerate() {
            if *table == 0 || *table == LOCAL_TABLE {
                return Err(format!(
                    "xdp-fib config: table {table} cannot be listed (0 is no table, 255 the local table, always followed)"
                ));
            }
            if self.tables[..i].contains(table) {
                return Err(format!("xdp-fib config: table {table} is listed twice"));
            }
        }
        Ok(())
    }

    /// The tables whose routes the plugin wants: the configured ones and
    /// the local table.
    pub fn followed(&self) -> Vec<u32> {
        self.tables.iter().copied().chain([LOCAL_TABLE]).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty means main; unknown keys, an empty list, the local table and
    /// duplicates are refused.
    #[test]
    fn defaults_and_refusals() {
        assert_eq!(Config::parse("").unwrap().tables, [254]);
        assert_eq!(
            Config::parse(r#"{"tables":[100,254]}"#).unwrap().followed(),
            [100, 254, 255]
        );
        assert!(Config::parse(r#"{"table":[254]}"#).is_err());
        assert!(Config::parse(r#"{"tables":[]}"#).is_err());
        assert!(Config::parse(r#"{"tables":[255]}"#).is_err());
        assert!(Config::parse(r#"{"tables":[7,7]}"#).is_err());
    }
}

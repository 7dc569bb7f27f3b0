//! The plugin's configuration: JSON, or empty for the defaults.
//!
//! ```json
//! {"table": 254}
//! ```
//!
//! `table`: the routing table to forward by (default: main, 254). The
//! local table (255) is always followed too, for its entries that pass to
//! the kernel (the router's own addresses, broadcasts), and always wins,
//! so it is not named. One table only: the kernel looks tables up one
//! after the other in rule order, and a longest-prefix match in an earlier
//! table ends the lookup, however long a match a later one has (table 100
//! with 10/8 and main with 10.1/16: 10.1.x.x goes by 10/8). One LPM trie
//! per family cannot express that, so policy routing across tables is not
//! programmed. Unknown keys are refused: a misspelt key must not silently
//! mean the default.

use serde::Deserialize;

use crate::candidates::LOCAL_TABLE;

/// The main table, the default.
const MAIN_TABLE: u32 = 254;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "main_table")]
    pub table: u32,
}

fn main_table() -> u32 {
    MAIN_TABLE
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, String> {
        let json = match text.trim() {
            "" => return Ok(Config { table: MAIN_TABLE }),
            json => json,
        };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("xdp-fib config: {e}"))?;
        if value.get("tables").is_some() {
            return Err(
                "xdp-fib config: \"tables\" is not supported, give one \"table\": \
                 the kernel looks tables up in rule order and stops at the first with any \
                 matching prefix, which one LPM trie per family cannot express"
                    .to_string(),
            );
        }
        let config: Config =
            serde_json::from_value(value).map_err(|e| format!("xdp-fib config: {e}"))?;
        if config.table == 0 || config.table == LOCAL_TABLE {
            return Err(format!(
                "xdp-fib config: table {} cannot be named (0 is no table, 255 the local table, always followed)",
                config.table
            ));
        }
        Ok(config)
    }

    /// The tables whose routes the plugin wants: the configured one and
    /// the local table.
    pub fn followed(&self) -> Vec<u32> {
        vec![self.table, LOCAL_TABLE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Empty means main; one table is taken; a list of tables is refused
    /// saying why; 0, the local table and unknown keys are refused.
    #[test]
    fn one_table_defaults_and_refusals() {
        assert_eq!(Config::parse("").unwrap().table, 254);
        assert_eq!(Config::parse("{}").unwrap().table, 254);
        assert_eq!(
            Config::parse(r#"{"table":100}"#).unwrap().followed(),
            [100, 255]
        );
        let error = Config::parse(r#"{"tables":[100,254]}"#).unwrap_err();
        assert!(
            error.contains("\"table\"") && error.contains("rule order"),
            "{error}"
        );
        assert!(Config::parse(r#"{"table":0}"#).is_err());
        assert!(Config::parse(r#"{"table":255}"#).is_err());
        assert!(Config::parse(r#"{"table":[254]}"#).is_err());
        assert!(Config::parse(r#"{"table":254,"x":1}"#).is_err());
    }
}

//! `nowt compare --grid KEY=V1,V2,…`: the points of a sweep (the product of every axis) and the
//! config of one run at one point. Each rule is trained at every point on a validation split;
//! the report keeps each rule's point with the lowest validation error (report.rs).

use crate::config::TrainConfig;
use anyhow::{anyhow, bail, Result};

/// One axis of a sweep: a config key (dotted for sections, as in config files: `lr`,
/// `weight_decay`, `rules.wm.lr`) and the values to try, as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

/// Parses `KEY=V1,V2,…` (clap's value parser for `--grid`).
pub fn axis(s: &str) -> Result<Axis, String> {
    let (key, values) = s
        .split_once('=')
        .ok_or_else(|| format!("{s}: expected KEY=V1,V2,… (e.g. lr=0.1,0.03,0.01)"))?;
    let values: Vec<String> = values.split(',').map(|v| v.trim().to_string()).collect();
    if key.trim().is_empty() || values.iter().any(String::is_empty) {
        return Err(format!(
            "{s}: expected KEY=V1,V2,… with no empty key or value"
        ));
    }
    Ok(Axis {
        key: key.trim().to_string(),
        values,
    })
}

/// One point of a sweep: a value for each axis, in the axes' order.
pub type Point = Vec<(String, String)>;

/// Every point of the product of `axes`, the first axis slowest; one empty point for none.
pub fn points(axes: &[Axis]) -> Vec<Point> {
    axes.iter().fold(vec![Vec::new()], |acc, a| {
        acc.iter()
            .flat_map(|p| {
                a.values.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push((a.key.clone(), v.clone()));
                    q
                })
            })
            .collect()
    })
}

/// The point's part of a run directory's name: `lr0.1`, `lr0.1-weight_decay5e-4` (characters
/// other than letters, digits, `.`, `_` and `-` become `_`).
pub fn label(point: &Point) -> String {
    point
        .iter()
        .map(|(k, v)| format!("{k}{v}"))
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A value as TOML reads it (`0.1`, `true`, `[50, 75]`, a quoted string), else as a string
/// (`cosine`, `xavier-uniform`).
fn value(v: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {v}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

/// `cfg` with the point's keys set, type-checked and validated; an error names the key and value.
pub fn apply(cfg: &TrainConfig, point: &Point) -> Result<TrainConfig> {
    let mut table = toml::Table::try_from(cfg)?;
    for (key, v) in point {
        let mut path: Vec<&str> = key.split('.').collect();
        let last = path.pop().expect("split yields one part");
        let mut at = &mut table;
        for part in path {
            at = at
                .entry(part)
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .ok_or_else(|| anyhow!("--grid {key}: {part} is not a section"))?;
        }
        at.insert(last.to_string(), value(v));
        toml::Value::Table(table.clone())
            .try_into::<TrainConfig>()
            .map_err(|e| anyhow!("--grid {key}={v}: {}", e.message().trim()))?;
    }
    let c: TrainConfig = toml::Value::Table(table).try_into()?;
    c.validate()
        .map_err(|e| anyhow!("--grid {}: {e}", text(point)))?;
    Ok(c)
}

/// `lr=0.1, weight_decay=5e-4`.
pub fn text(point: &Point) -> String {
    point
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sweep chooses on validation: its runs need a validation split.
pub fn needs_validation(cfg: &TrainConfig, axes: &[Axis]) -> Result<()> {
    if !axes.is_empty() && cfg.val_fraction == 0.0 {
        bail!(
            "--grid chooses each rule's value by its validation error: give --val-fraction \
             (e.g. 0.1) so that part of the training set is held out"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_and_multiply() {
        let a = axis("lr=0.1,0.03").unwrap();
        let b = axis("rules.wm.lr=1e-2,1e-3").unwrap();
        assert_eq!(a.values, ["0.1", "0.03"]);
        let ps = points(&[a, b]);
        assert_eq!(ps.len(), 4);
        assert_eq!(label(&ps[1]), "lr0.1-rules.wm.lr1e-3");
        assert_eq!(points(&[]), vec![Vec::new()]);
        for bad in ["lr", "=0.1", "lr=", "lr=0.1,,0.2"] {
            assert!(axis(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_point_sets_its_keys_and_refuses_bad_ones_by_name() {
        let cfg = TrainConfig::default();
        let p = vec![
            ("lr".to_string(), "0.03".to_string()),
            ("rules.kp_decay".to_string(), "5e-4".to_string()),
            ("init".to_string(), "xavier-uniform".to_string()),
        ];
        let c = apply(&cfg, &p).unwrap();
        assert_eq!(
            (c.lr, c.rules.kp_decay, c.init),
            (0.03, Some(5e-4), crate::params::Init::XavierUniform)
        );
        let one = |k: &str, v: &str| apply(&cfg, &vec![(k.to_string(), v.to_string())]);
        let e = one("lrr", "0.1").unwrap_err().to_string();
        assert!(e.starts_with("--grid lrr=0.1: unknown field `lrr`"), "{e}");
        let e = one("lr", "-1").unwrap_err().to_string();
        assert!(e.contains("--grid lr=-1") && e.contains("lr"), "{e}");
        let e = one("epochs", "fast").unwrap_err().to_string();
        assert!(e.starts_with("--grid epochs=fast: "), "{e}");
    }
}

//! Config files and the presets shipped in the binary. A config file holds `nowt train`'s keys
//! (a [`TrainConfig`]) and two optional sections that `train` and `compare` share:
//!
//! - `[overrides.<rule>]`: keys applied on top of the file for one rule (full name or alias),
//!   as published protocols give a rule its own learning rate: `[overrides.fa] lr = 0.001`;
//! - `[reference]`: published numbers for this setting (`source`, `metric`, then one value per
//!   rule), which reports show beside ours, never in place of ours.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::config::TrainConfig;
use crate::rules::RuleKind;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The presets: `(name, TOML)`, each citing the protocol it follows in its opening comment.
pub const PRESETS: [(&str, &str); 6] = [
    ("mnist-mlp", include_str!("../../presets/mnist-mlp.toml")),
    (
        "mnist-lenet",
        include_str!("../../presets/mnist-lenet.toml"),
    ),
    (
        "fashion-mnist-lenet",
        include_str!("../../presets/fashion-mnist-lenet.toml"),
    ),
    (
        "cifar10-resnet20",
        include_str!("../../presets/cifar10-resnet20.toml"),
    ),
    (
        "cifar10-resnet20-short",
        include_str!("../../presets/cifar10-resnet20-short.toml"),
    ),
    (
        "imagenet-resnet18",
        include_str!("../../presets/imagenet-resnet18.toml"),
    ),
];

/// Published numbers for a setting, by rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reference {
    /// Who published them, for what network, schedule and data.
    pub source: String,
    /// What the numbers are (e.g. `test top-1 error %`).
    pub metric: String,
    /// By rule name or alias.
    #[serde(flatten)]
    pub values: BTreeMap<String, f64>,
}

impl Reference {
    /// The published value for `rule`, if any.
    pub fn value(&self, rule: RuleKind) -> Option<f64> {
        self.values
            .iter()
            .find(|(k, _)| RuleKind::from_name(k).ok() == Some(rule))
            .map(|(_, v)| *v)
    }
}

/// A parsed config file or preset.
#[derive(Clone, Debug)]
pub struct ConfigFile {
    /// The file's path, or `preset NAME`.
    pub origin: String,
    /// The text as written.
    pub text: String,
    base: TrainConfig,
    overrides: Vec<(RuleKind, toml::Table)>,
    pub reference: Option<Reference>,
}

/// The 1-based line of byte `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

impl ConfigFile {
    /// Reads a config file; unknown keys and bad values are errors naming the file and line.
    pub fn read(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The preset `name`.
    pub fn preset(name: &str) -> Result<Self> {
        match PRESETS.iter().find(|(n, _)| *n == name) {
            Some((n, text)) => Self::parse(text, &format!("preset {n}")),
            None => bail!(
                "--preset {name}: no such preset; choose one of {} (nowt presets)",
                PRESETS.map(|(n, _)| n).join(", ")
            ),
        }
    }

    /// Parses `text`, which came from `origin`.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let err = |e: toml::de::Error| {
            let at = e
                .span()
                .map(|s| format!(" line {}", line_of(text, s.start)))
                .unwrap_or_default();
            anyhow::anyhow!("{origin}{at}: {}", e.message().trim())
        };
        let mut doc = toml::de::DeTable::parse(text).map_err(err)?;
        let table = doc.get_mut();
        let overrides = table.remove("overrides");
        let reference = table.remove("reference");
        let base: TrainConfig =
            serde::Deserialize::deserialize(toml::de::Deserializer::from(doc)).map_err(err)?;
        // The two sections again, as plain tables (their spans were consumed above).
        let whole: toml::Table = toml::from_str(text).map_err(err)?;
        let mut parsed = Vec::new();
        if overrides.is_some() {
            let Some(toml::Value::Table(t)) = whole.get("overrides") else {
                bail!("{origin}: [overrides] must be a table of [overrides.<rule>] tables");
            };
            for (name, v) in t {
                let rule = RuleKind::from_name(name)
                    .map_err(|e| anyhow::anyhow!("{origin}: [overrides.{name}]: {e}"))?;
                let toml::Value::Table(keys) = v else {
                    bail!("{origin}: overrides.{name} must be a table of config keys");
                };
                parsed.push((rule, keys.clone()));
            }
        }
        let reference = match reference {
            None => None,
            Some(_) => {
                let v = whole.get("reference").cloned().expect("present");
                let r: Reference = v
                    .try_into()
                    .map_err(|e: toml::de::Error| anyhow::anyhow!("{origin}: [reference]: {e}"))?;
                for name in r.values.keys() {
                    RuleKind::from_name(name)
                        .map_err(|e| anyhow::anyhow!("{origin}: [reference] {name}: {e}"))?;
                }
                Some(r)
            }
        };
        let file = Self {
            origin: origin.to_string(),
            text: text.to_string(),
            base,
            overrides: parsed,
            reference,
        };
        // Every rule's config must parse, so a bad override is found before any run starts.
        for rule in RuleKind::ALL {
            file.for_rule(Some(rule))?;
        }
        Ok(file)
    }

    /// Whether `[overrides.<rule>]` sets `key` (dotted for sections): a published per-rule value
    /// that a sweep leaves as it is.
    pub fn overrides_key(&self, rule: RuleKind, key: &str) -> bool {
        self.overrides
            .iter()
            .filter(|(r, _)| *r == rule)
            .any(|(_, t)| {
                let mut parts = key.split('.').peekable();
                let mut at = t;
                while let Some(p) = parts.next() {
                    match (at.get(p), parts.peek()) {
                        (Some(_), None) => return true,
                        (Some(toml::Value::Table(next)), Some(_)) => at = next,
                        _ => return false,
                    }
                }
                false
            })
    }

    /// The configuration for `rule` (or the file's own rule): the file's keys, then that rule's
    /// overrides on top.
    pub fn for_rule(&self, rule: Option<RuleKind>) -> Result<TrainConfig> {
        let mut c = self.base.clone();
        if let Some(r) = rule {
            c.rule = r;
        }
        let Some((_, keys)) = self.overrides.iter().find(|(r, _)| *r == c.rule) else {
            return Ok(c);
        };
        let mut table = toml::Table::try_from(&c).context("cannot serialise a config")?;
        merge(&mut table, keys);
        let name = c.rule.name();
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| {
                anyhow::anyhow!(
                    "{}: [overrides.{name}]: {}",
                    self.origin,
                    e.message().trim()
                )
            })
    }
}

/// `base` with `top`'s keys on top, tables merged key by key.
pub(crate) fn merge(base: &mut toml::Table, top: &toml::Table) {
    for (k, v) in top {
        match (base.get_mut(k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every preset parses with every key known (unknown keys are errors), for every rule.
    #[test]
    fn presets_parse_and_every_key_is_known() {
        for (name, _) in PRESETS {
            let f = ConfigFile::preset(name).unwrap();
            for rule in RuleKind::ALL {
                let cfg = f.for_rule(Some(rule)).unwrap();
                cfg.validate().unwrap();
                let idle = cfg.without_effect();
                assert!(idle.is_empty(), "{name} under {}: {idle:?}", rule.name());
            }
        }
    }

    #[test]
    fn overrides_apply_to_their_rule_only() {
        let f = ConfigFile::parse(
            "lr = 0.1\nepochs = 3\n[overrides.fa]\nlr = 0.001\n[overrides.weight-mirror.rules.wm]\nlr = 0.05\n",
            "t.toml",
        )
        .unwrap();
        let fa = f.for_rule(Some(RuleKind::FeedbackAlignment)).unwrap();
        assert_eq!((fa.lr, fa.epochs), (0.001, 3));
        let wm = f.for_rule(Some(RuleKind::WeightMirror)).unwrap();
        assert_eq!((wm.lr, wm.rules.wm.lr, wm.rules.wm.decay), (0.1, 0.05, 1.0));
        assert_eq!(f.for_rule(Some(RuleKind::Backprop)).unwrap().lr, 0.1);
    }

    #[test]
    fn bad_sections_are_named() {
        let bad = |text: &str, want: &str| {
            let e = format!("{:#}", ConfigFile::parse(text, "t.toml").unwrap_err());
            assert!(e.contains(want), "{e}");
        };
        bad("epochs = 2\nlearning_rate = 1\n", "t.toml line 2");
        bad("[overrides.magic]\nlr = 1\n", "unknown rule 'magic'");
        bad(
            "[overrides.fa]\nlrr = 1\n",
            "[overrides.feedback-alignment]",
        );
        bad(
            "[reference]\nsource = 'x'\nmetric = 'y'\nmagic = 1\n",
            "[reference] magic",
        );
    }
}

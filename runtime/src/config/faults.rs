//! Fault injection's vocabulary (DESIGN §4): which operation fails, how,
//! and for what share of its calls; set by `CHORUS_FAULTS` or `setFault`.

use std::str::FromStr;

/// What a fault does to the calls it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FaultMode {
    /// No fault: the operation runs normally.
    None,
    /// The service answers with a service error.
    Error,
    /// The service never answers, so the caller times out.
    Timeout,
}

impl FromStr for FaultMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Ok(FaultMode::None),
            "error" => Ok(FaultMode::Error),
            "timeout" => Ok(FaultMode::Timeout),
            other => Err(format!("unknown fault mode `{other}` (expected none, error or timeout)")),
        }
    }
}

/// The operations a fault can target (DESIGN §4).
pub const FAULT_TARGETS: &[&str] = &[
    "catalogue.get",
    "inventory.reserve",
    "inventory.release",
    "inventory.commit",
    "orders.create",
    "orders.cancel",
];

/// One fault: `target` fails in `mode` for a share `rate` (0..=1) of its calls.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultSpec {
    pub target: String,
    pub mode: FaultMode,
    pub rate: f64,
}

impl FaultSpec {
    /// Checks a fault as an admin or `CHORUS_FAULTS` gives it.
    pub fn new(target: &str, mode: FaultMode, rate: f64) -> Result<Self, String> {
        if !FAULT_TARGETS.contains(&target) {
            return Err(format!(
                "unknown fault target `{target}` (expected one of {})",
                FAULT_TARGETS.join(", ")
            ));
        }
        if !(0.0..=1.0).contains(&rate) || rate.is_nan() {
            return Err(format!("fault rate {rate} is outside 0..=1"));
        }
        Ok(FaultSpec { target: target.to_owned(), mode, rate })
    }
}

impl FromStr for FaultSpec {
    type Err = String;
    /// `target=mode:rate`, e.g. `orders.create=error:1.0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (target, rest) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}` is not `target=mode:rate`"))?;
        let (mode, rate) = rest.split_once(':').unwrap_or((rest, "1.0"));
        let rate: f64 = rate
            .trim()
            .parse()
            .map_err(|_| format!("`{rate}` in `{s}` is not a rate between 0 and 1"))?;
        FaultSpec::new(target.trim(), mode.trim().parse()?, rate)
    }
}

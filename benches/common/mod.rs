//! Helpers the benches share: medians, ratios and their formatting, JSON
//! fields. Each bench uses some of them.

#![allow(dead_code)]

use std::io;

/// A rate with three significant digits: 987, 1.23k, 45.6k, 1.02M.
pub(crate) fn fmt_rate(x: f64) -> String {
    let (v, unit) = if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    let decimals = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.decimals$}{unit}")
}

pub(crate) fn fmt_ratio(r: Option<f64>) -> String {
    r.map_or_else(|| "-".to_string(), |r| format!("{r:.2}x"))
}

pub(crate) fn joined<T>(res: std::result::Result<T, tokio::task::JoinError>) -> io::Result<T> {
    res.map_err(io::Error::other)
}

pub(crate) fn json_list(xs: impl Iterator<Item = f64>) -> String {
    let items: Vec<String> = xs.map(|x| json_num(Some(x))).collect();
    format!("[{}]", items.join(","))
}

pub(crate) fn json_num(x: Option<f64>) -> String {
    match x {
        Some(x) if x.is_finite() => format!("{x:.4}"),
        _ => "null".to_string(),
    }
}

pub(crate) fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `a / b`, or `None` when it means nothing (a zero or non-finite figure).
pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    let r = a / b;
    (r.is_finite() && r > 0.0).then_some(r)
}

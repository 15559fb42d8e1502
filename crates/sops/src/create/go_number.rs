//! Go's number formatting where sops writes plaintext numbers (unencrypted values): yaml.v3 uses
//! `strconv.FormatFloat(f, 'g', -1, 64)`, `encoding/json` uses `'f'` or `'e'` by magnitude.

/// The shortest decimal digits of `f` (no sign, no dot) and the decimal exponent of the first.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` prints the shortest round-trip digits, like Go's precision -1.
    let text = format!("{:e}", f.abs());
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exponent.parse().unwrap_or(0))
}

fn fmt_e(negative: bool, digits: &str, exp: i32, min_exp_digits: usize) -> String {
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('e');
    out.push(if exp < 0 { '-' } else { '+' });
    let magnitude = exp.unsigned_abs().to_string();
    for _ in magnitude.len()..min_exp_digits {
        out.push('0');
    }
    out.push_str(&magnitude);
    out
}

fn special(f: f64, inf: &str, neg_inf: &str, nan: &str) -> Option<String> {
    if f.is_nan() {
        Some(nan.to_owned())
    } else if f.is_infinite() {
        Some(if f > 0.0 { inf } else { neg_inf }.to_owned())
    } else {
        None
    }
}

/// yaml.v3's float text: `FormatFloat(f, 'g', -1, 64)`, `.inf`/`-.inf`/`.nan`.
pub(crate) fn yaml_float(f: f64) -> String {
    if let Some(s) = special(f, ".inf", "-.inf", ".nan") {
        return s;
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let (digits, exp) = shortest_digits(f);
    if !(-4..6).contains(&exp) {
        return fmt_e(f < 0.0, &digits, exp, 2);
    }
    format!("{f}")
}

/// `encoding/json`'s float text: `'f'` unless |f| < 1e-6 or ≥ 1e21, then `'e'` with `e-7` (not
/// `e-07`).
pub(crate) fn json_float(f: f64) -> String {
    if let Some(s) = special(f, "+Inf", "-Inf", "NaN") {
        return s;
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (digits, exp) = shortest_digits(f);
        return fmt_e(f < 0.0, &digits, exp, 1);
    }
    format!("{f}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_floats_are_formatted_like_go_g() {
        assert_eq!(yaml_float(1.0), "1");
        assert_eq!(yaml_float(1.5), "1.5");
        assert_eq!(yaml_float(1000.0), "1000");
        assert_eq!(yaml_float(1_234_567.0), "1.234567e+06");
        assert_eq!(yaml_float(0.00001), "1e-05");
        assert_eq!(yaml_float(0.0001), "0.0001");
        assert_eq!(yaml_float(f64::INFINITY), ".inf");
    }

    #[test]
    fn json_floats_are_formatted_like_encoding_json() {
        assert_eq!(json_float(12_345_678.0), "12345678");
        assert_eq!(json_float(1e21), "1e+21");
        assert_eq!(json_float(0.000001), "0.000001");
        assert_eq!(json_float(1e-7), "1e-7");
        assert_eq!(json_float(-2.5), "-2.5");
    }
}

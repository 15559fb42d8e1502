//! Shamir secret sharing over GF(2^8) (polynomial 0x11b), compatible with the Vault code sops
//! vendors: a share is the y-bytes followed by one x-byte. sops 3.10+ splits at x = group index + 1;
//! older sops chose x at random (and 3.11 still reads such files), so a share's x is always read
//! from the share itself, never assumed.

use rand::RngCore as _;
use zeroize::Zeroizing;

fn mul(mut a: u8, mut b: u8) -> u8 {
    let mut product = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            product ^= a;
        }
        let carry = a & 0x80;
        a <<= 1;
        if carry != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    product
}

fn inverse(a: u8) -> u8 {
    // a^254 = a^-1 in GF(2^8) (and 0 for 0).
    let mut result = 1u8;
    let mut base = a;
    let mut exponent = 254u32;
    while exponent > 0 {
        if exponent & 1 == 1 {
            result = mul(result, base);
        }
        base = mul(base, base);
        exponent >>= 1;
    }
    result
}

fn div(a: u8, b: u8) -> u8 {
    mul(a, inverse(b))
}

/// Evaluates at `x` the polynomial through the points of `shares` (each `y… x`), byte by byte.
/// Returns `None` when shares disagree in length or repeat an x.
pub(crate) fn interpolate(shares: &[&[u8]], x: u8) -> Option<Zeroizing<Vec<u8>>> {
    let first = shares.first()?;
    let len = first.len().checked_sub(1)?;
    if shares.iter().any(|s| s.len() != len + 1) {
        return None;
    }
    let xs: Vec<u8> = shares.iter().map(|s| s[len]).collect();
    for (i, a) in xs.iter().enumerate() {
        if xs[i + 1..].contains(a) {
            return None;
        }
    }
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, share) in shares.iter().enumerate() {
        let mut basis = 1u8;
        for (j, xj) in xs.iter().enumerate() {
            if i != j {
                basis = mul(basis, div(x ^ xj, xs[i] ^ xj));
            }
        }
        for (byte, y) in out.iter_mut().zip(share.iter()) {
            *byte ^= mul(*y, basis);
        }
    }
    Some(out)
}

/// Splits `secret` into `parts` shares (x = 1…parts), any `threshold` of which recombine.
pub(crate) fn split(secret: &[u8], parts: u8, threshold: u8) -> Vec<Zeroizing<Vec<u8>>> {
    let degree = usize::from(threshold.max(1) - 1);
    let mut coefficients = Zeroizing::new(vec![0u8; secret.len() * degree]);
    rand::rngs::OsRng.fill_bytes(&mut coefficients);
    (1..=parts)
        .map(|x| {
            let mut share = Zeroizing::new(Vec::with_capacity(secret.len() + 1));
            for (index, intercept) in secret.iter().enumerate() {
                // Horner, highest coefficient first.
                let mut y = 0u8;
                for k in (0..degree).rev() {
                    y = mul(y, x) ^ coefficients[index * degree + k];
                }
                share.push(mul(y, x) ^ intercept);
            }
            share.push(x);
            share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_threshold_subset_recombines_the_secret() {
        let secret: Vec<u8> = (0u8..32).collect();
        let shares = split(&secret, 3, 2);
        for pair in [[0, 1], [1, 2], [0, 2]] {
            let chosen: Vec<&[u8]> = pair.iter().map(|&i| shares[i].as_slice()).collect();
            assert_eq!(
                interpolate(&chosen, 0).unwrap().as_slice(),
                secret.as_slice()
            );
        }
        let chosen: Vec<&[u8]> = vec![&shares[0], &shares[1]];
        let third = interpolate(&chosen, 3).unwrap();
        assert_eq!(third.as_slice(), &shares[2][..32]);
    }

    #[test]
    fn field_inverse_is_correct() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inverse(a)), 1);
        }
    }
}

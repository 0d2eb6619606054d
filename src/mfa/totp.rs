//! TOTP (RFC 6238): SHA-1, six digits, 30-second steps, one step of clock skew either way,
//! as every authenticator app expects. The secret is 160 random bits (RFC 4226 §4),
//! shown to the user once as base32 and as an `otpauth://` QR code.

use totp_rs::{Builder, Secret, Totp};

/// The issuer name authenticator apps show next to the account.
pub const ISSUER: &str = "partnergate";

fn totp(secret_b32: &str, account: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_b32).ok()?;
    // ':' is not allowed in an otpauth label; an email never needs one.
    let account = account.replace(':', "");
    Builder::new()
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(ISSUER))
        .build()
        .ok()
}

/// A new secret, base32 (RFC 4648, no padding).
pub fn new_secret() -> String {
    let bytes: [u8; 20] = rand::random();
    Secret::from(bytes).to_base32()
}

/// The `otpauth://totp/…` URI of the secret for `account` (the user's email).
pub fn provisioning_uri(secret_b32: &str, account: &str) -> Option<String> {
    totp(secret_b32, account)?.to_url().ok()
}

/// The time step whose code is `code` at `now` (± one step), if any. The comparison is
/// constant-time; whether a step was used before is the caller's question.
pub fn matching_step(secret_b32: &str, code: &str, now: i64) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = u64::try_from(now).ok()?;
    let step = totp(secret_b32, "")?.check(&code, now)?;
    i64::try_from(step).ok()
}

/// The code of the secret at `now` (the test suite and `examples/` compute codes with it).
pub fn code_at(secret_b32: &str, now: i64) -> Option<String> {
    let now = u64::try_from(now).ok()?;
    Some(totp(secret_b32, "")?.generate(now).to_string())
}

/// The URI as an SVG QR code, for the enrolment page.
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 6238 appendix B: the SHA-1 secret "12345678901234567890".
    const RFC_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc_6238_vectors() {
        // The RFC's 8-digit codes, last six digits.
        for (t, want) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (1_234_567_890, "005924"),
        ] {
            assert_eq!(code_at(RFC_SECRET, t).as_deref(), Some(want), "t={t}");
        }
    }

    #[test]
    fn one_step_of_skew_and_no_more() {
        let s = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&s, now).unwrap();
        assert_eq!(matching_step(&s, &code, now), Some(now / 30));
        assert_eq!(matching_step(&s, &code, now + 30), Some(now / 30));
        assert_eq!(matching_step(&s, &code, now - 30), Some(now / 30));
        assert_eq!(matching_step(&s, &code, now + 90), None);
        assert_eq!(matching_step(&s, " 12 34 5", now), None);
        assert_eq!(matching_step(&s, "abcdef", now), None);
        assert_eq!(matching_step(&s, &format!("{code}0"), now), None);
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert_eq!(matching_step(&s, &spaced, now), Some(now / 30));
    }

    #[test]
    fn uri_and_qr() {
        let s = new_secret();
        let uri = provisioning_uri(&s, "carol@brightpath.example").unwrap();
        assert!(uri.starts_with("otpauth://totp/partnergate:carol"), "{uri}");
        assert!(uri.contains(&format!("secret={s}")), "{uri}");
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg"), "{}", &svg[..60.min(svg.len())]);
        assert!(matching_step("not base32!", "123456", 100).is_none());
    }
}

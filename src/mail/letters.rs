//! The text of each mail: plain text and HTML, the link built from `server.public_url`.

use crate::directory::{MailKind, OutgoingMail};
use crate::portal::escape_html;

/// Writes the gateway's mails.
#[derive(Debug, Clone)]
pub struct Letters {
    /// `https://partners.example.com`, without a trailing slash.
    origin: String,
}

impl Letters {
    pub fn new(origin: impl Into<String>) -> Self {
        Letters {
            origin: origin.into().trim_end_matches('/').to_string(),
        }
    }

    /// The absolute URL of a path on the public URL.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin)
    }

    fn mail(
        kind: MailKind,
        to: &str,
        subject: &str,
        lines: &[&str],
        link: Option<(&str, &str)>,
    ) -> OutgoingMail {
        let mut text = String::new();
        let mut html = String::from("<!doctype html><html><body style=\"font-family:sans-serif\">");
        for line in lines {
            text.push_str(line);
            text.push_str("\n\n");
            html.push_str(&format!("<p>{}</p>", escape_html(line)));
        }
        if let Some((label, url)) = link {
            text.push_str(&format!("{label}:\n{url}\n\n"));
            html.push_str(&format!(
                "<p><a href=\"{0}\">{1}</a></p><p style=\"color:#555\">{0}</p>",
                escape_html(url),
                escape_html(label)
            ));
        }
        text.push_str("-- \nThis mail was sent by the partner portal's sign-in service.\n");
        html.push_str("<p style=\"color:#555\">This mail was sent by the partner portal's sign-in service.</p></body></html>");
        OutgoingMail {
            kind,
            recipient: to.to_string(),
            subject: subject.to_string(),
            text,
            html,
        }
    }

    /// An invitation into `org` with its single-use link.
    pub fn invitation(&self, to: &str, org: &str, link: &str, expires: &str) -> OutgoingMail {
        let first = format!("You are invited to the partner portal as a member of {org}.");
        let second =
            format!("Open the link below to set your password. It works once, until {expires}.");
        Self::mail(
            MailKind::Invitation,
            to,
            &format!("Your invitation to the partner portal ({org})"),
            &[&first, &second],
            Some(("Accept the invitation", link)),
        )
    }

    /// A password reset link.
    pub fn password_reset(&self, to: &str, link: &str, minutes: u64) -> OutgoingMail {
        let first =
            "Someone (we hope you) asked to reset the password of your partner portal account.";
        let second = format!(
            "Open the link below within {minutes} minutes to choose a new password. It works once. \
             If you did not ask for this, ignore this mail: your password stays as it is."
        );
        Self::mail(
            MailKind::PasswordReset,
            to,
            "Reset your partner portal password",
            &[first, &second],
            Some(("Choose a new password", link)),
        )
    }

    /// The account was locked after too many failed sign-ins.
    pub fn account_locked(&self, to: &str, until: &str) -> OutgoingMail {
        let first = format!(
            "Your partner portal account was locked after several failed sign-in attempts. \
             It unlocks by itself at {until}."
        );
        let second = "If these attempts were not yours, reset your password once it unlocks, \
             and tell your partner admin.";
        let reset = self.url("/.partnergate/reset");
        Self::mail(
            MailKind::AccountLocked,
            to,
            "Your partner portal account was locked",
            &[&first, second],
            Some(("Reset your password", &reset)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_link_escaped() {
        let l = Letters::new("https://partners.example.com/");
        let m = l.invitation(
            "a@x.example",
            "Acme <&> Co",
            "https://partners.example.com/.partnergate/invite/t0k",
            "2027-01-01 00:00 UTC",
        );
        assert_eq!(m.kind, MailKind::Invitation);
        assert!(m
            .text
            .contains("https://partners.example.com/.partnergate/invite/t0k"));
        assert!(m.html.contains("Acme &lt;&amp;&gt; Co"), "{}", m.html);
        assert!(!m.html.contains("<&>"));
        let r = l.password_reset("a@x.example", "https://p/.partnergate/reset/x", 30);
        assert!(r.text.contains("30 minutes"));
        let k = l.account_locked("a@x.example", "2027-01-01 00:15 UTC");
        assert!(k
            .text
            .contains("https://partners.example.com/.partnergate/reset"));
        assert!(!format!("{m:?}").contains("t0k"), "no link in Debug");
    }
}

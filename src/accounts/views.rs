//! The home page with its log-in and sign-up forms.

use maud::{Markup, html};

use super::MaybeUser;
use crate::live::Chosen;
use crate::pages::{Frame, layout};

/// What the forms show again after a refused submission.
#[derive(Default)]
pub struct Forms {
    pub login: String,
    pub login_error: Option<String>,
    pub signup_email: String,
    pub signup_handle: String,
    pub signup_error: Option<String>,
}

pub fn home(user: &MaybeUser, transport: Chosen, forms: &Forms) -> Markup {
    let frame = Frame::new("Welcome", user, transport);
    layout(
        &frame,
        html! {
            h1 { "From polling to real time" }
            p.lede {
                "Post, mention each other with @handle or @email, and watch mentions arrive "
                "live over polling or Server-Sent Events. Flip the switch at the top to "
                "compare. No account is needed for the "
                a href="/posts/content/" { "Mastodon mirror" } "."
            }
            div.forms {
                form #login-form method="post" action="/accounts/login" {
                    h2 { "Log in" }
                    @if let Some(error) = &forms.login_error {
                        p.error role="alert" { (error) }
                    }
                    label { "Email or handle"
                        input name="login" required autocomplete="username" value=(forms.login);
                    }
                    label { "Password"
                        input name="password" type="password" required
                            autocomplete="current-password";
                    }
                    button type="submit" { "Log in" }
                }
                form #signup-form method="post" action="/accounts/signup" {
                    h2 { "Sign up" }
                    @if let Some(error) = &forms.signup_error {
                        p.error role="alert" { (error) }
                    }
                    label { "Email"
                        input name="email" type="email" required autocomplete="email"
                            value=(forms.signup_email);
                    }
                    label { "Handle"
                        input name="handle" required pattern="[a-z0-9_]{3,30}"
                            autocomplete="username" value=(forms.signup_handle);
                    }
                    label { "Password (8 or more characters)"
                        input name="password" type="password" required minlength="8"
                            autocomplete="new-password";
                    }
                    button type="submit" { "Sign up" }
                }
            }
        },
    )
}

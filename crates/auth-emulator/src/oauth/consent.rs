//! The consent pages' decisions, as queued by tests: deny the next consents,
//! consent as given users, untick scopes. Every provider's consent page (and
//! Google's device page) takes the next decision from one queue.

use std::collections::VecDeque;

/// The outcome of one consent page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Consent {
    Denied,
    Granted {
        user_id: String,
        /// Restricts the granted scopes to these (the user unticked others).
        only: Option<Vec<String>>,
    },
}

/// What the next consent pages will do.
#[derive(Debug)]
pub(crate) struct Consents {
    deny: u32,
    users: VecDeque<String>,
    scopes: Option<Vec<String>>,
    /// Who consents when no user is queued.
    default_user: String,
}

impl Consents {
    /// No decision queued: consents are granted as `default_user`.
    pub(crate) fn new(default_user: String) -> Self {
        Self {
            deny: 0,
            users: VecDeque::new(),
            scopes: None,
            default_user,
        }
    }

    /// The next consent is denied (calls add up).
    pub(crate) fn deny_next(&mut self) {
        self.deny += 1;
    }

    /// The next consent is given by `user_id` (calls queue up).
    pub(crate) fn push_user(&mut self, user_id: String) {
        self.users.push_back(user_id);
    }

    /// The next consent grants only these of the requested scopes.
    pub(crate) fn restrict_next_scopes(&mut self, scopes: Vec<String>) {
        self.scopes = Some(scopes);
    }

    /// Takes the next queued consent decision.
    pub(crate) fn next(&mut self) -> Consent {
        if self.deny > 0 {
            self.deny -= 1;
            return Consent::Denied;
        }
        let user_id = self
            .users
            .pop_front()
            .unwrap_or_else(|| self.default_user.clone());
        Consent::Granted {
            user_id,
            only: self.scopes.take(),
        }
    }
}

/// The requested scopes the user left ticked.
pub(crate) fn grant_scopes(requested: Vec<String>, only: Option<Vec<String>>) -> Vec<String> {
    match only {
        Some(only) => requested.into_iter().filter(|s| only.contains(s)).collect(),
        None => requested,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_come_first_then_queued_users_then_the_default() {
        let mut consents = Consents::new("DEFAULT".into());
        consents.push_user("ANN".into());
        consents.deny_next();
        consents.restrict_next_scopes(vec!["sleep".into()]);
        assert_eq!(consents.next(), Consent::Denied);
        assert_eq!(
            consents.next(),
            Consent::Granted {
                user_id: "ANN".into(),
                only: Some(vec!["sleep".into()])
            }
        );
        assert_eq!(
            consents.next(),
            Consent::Granted {
                user_id: "DEFAULT".into(),
                only: None
            }
        );
    }

    #[test]
    fn unticked_scopes_are_dropped() {
        let requested = vec!["sleep".to_owned(), "profile".to_owned()];
        assert_eq!(
            grant_scopes(requested.clone(), Some(vec!["profile".into()])),
            vec!["profile".to_owned()]
        );
        assert_eq!(grant_scopes(requested.clone(), None), requested);
    }
}

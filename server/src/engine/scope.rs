//! A controller's scope: the objects it takes. Tests run their own controllers on the shared
//! cluster, each scoped by a label, so parallel tests never touch each other's objects; the
//! server's controllers take every object without the label.

/// Objects carrying this label belong to the controller started with the same scope.
pub const SCOPE_LABEL: &str = "hexabase.ai/controller-scope";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(pub Option<String>);

impl Scope {
    /// The scope of a test controller.
    pub fn labelled(scope: impl Into<String>) -> Self {
        Self(Some(scope.into()))
    }

    /// The label selector for this scope's objects.
    pub fn selector(&self) -> String {
        match &self.0 {
            Some(scope) => format!("{SCOPE_LABEL}={scope}"),
            None => format!("!{SCOPE_LABEL}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scope_takes_unlabelled_objects_and_a_test_scope_only_its_own() {
        assert_eq!(Scope::default().selector(), "!hexabase.ai/controller-scope");
        assert_eq!(Scope::labelled("t-1").selector(), "hexabase.ai/controller-scope=t-1");
    }
}

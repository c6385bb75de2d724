//! [`Condition`]: when a join has all it waits for.

use std::collections::BTreeSet;
use std::fmt;

/// Which sources a join needs before it emits: all of, any of, none of a set, combined with
/// [`and`](Condition::and), [`or`](Condition::or) and [`xor`](Condition::xor).
///
/// ```
/// use event_bus::pipeline::Condition;
/// use std::collections::BTreeSet;
///
/// let condition = Condition::all_of(["payment", "inventory"]).and(Condition::none_of(["cancelled"]));
/// let present = |sources: &[&str]| sources.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
/// assert!(!condition.matches(&present(&["payment"])));
/// assert!(condition.matches(&present(&["payment", "inventory"])));
/// assert!(!condition.matches(&present(&["payment", "inventory", "cancelled"])));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Condition {
    /// Every listed source is present.
    AllOf(BTreeSet<String>),
    /// At least one listed source is present.
    AnyOf(BTreeSet<String>),
    /// No listed source is present.
    NoneOf(BTreeSet<String>),
    /// Both hold.
    And(Box<Condition>, Box<Condition>),
    /// Either holds.
    Or(Box<Condition>, Box<Condition>),
    /// Exactly one holds.
    Xor(Box<Condition>, Box<Condition>),
}

fn set<I, S>(sources: I) -> BTreeSet<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    sources.into_iter().map(Into::into).collect()
}

impl Condition {
    /// Every source in `sources` has arrived (event-driver's `MatchAll`).
    ///
    /// ```
    /// let c = event_bus::pipeline::Condition::all_of(["a", "b"]);
    /// assert!(c.matches(&["a".to_string(), "b".to_string()].into()));
    /// ```
    pub fn all_of<I, S>(sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Condition::AllOf(set(sources))
    }

    /// At least one source in `sources` has arrived (`MatchAny`). With no sources it matches any
    /// part, as event-driver's `MatchAny()` does: every message that reaches the join passes on
    /// at once, as a join of one part.
    ///
    /// ```
    /// use event_bus::pipeline::Condition;
    ///
    /// let c = Condition::any_of(["a", "b"]);
    /// assert!(c.matches(&["b".to_string()].into()));
    /// assert!(Condition::any_of(Vec::<String>::new()).matches(&["x".to_string()].into()));
    /// ```
    pub fn any_of<I, S>(sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Condition::AnyOf(set(sources))
    }

    /// None of `sources` has arrived (`MatchNone`).
    ///
    /// ```
    /// let c = event_bus::pipeline::Condition::none_of(["cancelled"]);
    /// assert!(c.matches(&["paid".to_string()].into()));
    /// ```
    pub fn none_of<I, S>(sources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Condition::NoneOf(set(sources))
    }

    /// Both conditions hold.
    ///
    /// ```
    /// use event_bus::pipeline::Condition;
    ///
    /// let c = Condition::any_of(["a"]).and(Condition::any_of(["b"]));
    /// assert!(!c.matches(&["a".to_string()].into()));
    /// ```
    pub fn and(self, other: Condition) -> Self {
        Condition::And(Box::new(self), Box::new(other))
    }

    /// Either condition holds.
    ///
    /// ```
    /// use event_bus::pipeline::Condition;
    ///
    /// let c = Condition::all_of(["a", "b"]).or(Condition::all_of(["c"]));
    /// assert!(c.matches(&["c".to_string()].into()));
    /// ```
    pub fn or(self, other: Condition) -> Self {
        Condition::Or(Box::new(self), Box::new(other))
    }

    /// Exactly one of the conditions holds.
    ///
    /// ```
    /// use event_bus::pipeline::Condition;
    ///
    /// let c = Condition::any_of(["card"]).xor(Condition::any_of(["cash"]));
    /// assert!(c.matches(&["card".to_string()].into()));
    /// assert!(!c.matches(&["card".to_string(), "cash".to_string()].into()));
    /// ```
    pub fn xor(self, other: Condition) -> Self {
        Condition::Xor(Box::new(self), Box::new(other))
    }

    /// Whether the sources in `present` satisfy the condition.
    ///
    /// ```
    /// let c = event_bus::pipeline::Condition::all_of(["a"]);
    /// assert!(!c.matches(&Default::default()));
    /// ```
    pub fn matches(&self, present: &BTreeSet<String>) -> bool {
        match self {
            Condition::AllOf(sources) => sources.is_subset(present),
            Condition::AnyOf(sources) if sources.is_empty() => !present.is_empty(),
            Condition::AnyOf(sources) => !sources.is_disjoint(present),
            Condition::NoneOf(sources) => sources.is_disjoint(present),
            Condition::And(a, b) => a.matches(present) && b.matches(present),
            Condition::Or(a, b) => a.matches(present) || b.matches(present),
            Condition::Xor(a, b) => a.matches(present) != b.matches(present),
        }
    }

    /// The sources the condition asks for (outside none-of) that are not in `present`: what an
    /// expired join was still waiting for.
    ///
    /// ```
    /// use event_bus::pipeline::Condition;
    ///
    /// let c = Condition::all_of(["order", "payment", "inventory"]);
    /// let missing = c.missing(&["order".to_string()].into());
    /// assert_eq!(missing, ["inventory", "payment"]);
    /// ```
    pub fn missing(&self, present: &BTreeSet<String>) -> Vec<String> {
        let mut wanted = BTreeSet::new();
        self.collect_wanted(&mut wanted);
        wanted.difference(present).cloned().collect()
    }

    /// Whether a part from `source` can make a difference to the condition: it names the source
    /// (in any of its sets), or is an empty `any_of`, which matches any part.
    ///
    /// ```
    /// use event_bus::pipeline::Condition;
    ///
    /// let c = Condition::all_of(["a"]).and(Condition::none_of(["cancelled"]));
    /// assert!(c.names("a") && c.names("cancelled") && !c.names("b"));
    /// ```
    pub fn names(&self, source: &str) -> bool {
        match self {
            Condition::AnyOf(sources) if sources.is_empty() => true,
            Condition::AllOf(sources) | Condition::AnyOf(sources) | Condition::NoneOf(sources) => {
                sources.contains(source)
            }
            Condition::And(a, b) | Condition::Or(a, b) | Condition::Xor(a, b) => {
                a.names(source) || b.names(source)
            }
        }
    }

    fn collect_wanted(&self, wanted: &mut BTreeSet<String>) {
        match self {
            Condition::AllOf(sources) | Condition::AnyOf(sources) => {
                wanted.extend(sources.iter().cloned());
            }
            Condition::NoneOf(_) => {}
            Condition::And(a, b) | Condition::Or(a, b) | Condition::Xor(a, b) => {
                a.collect_wanted(wanted);
                b.collect_wanted(wanted);
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |sources: &BTreeSet<String>| sources.iter().cloned().collect::<Vec<_>>().join(", ");
        match self {
            Condition::AllOf(s) => write!(f, "all of [{}]", list(s)),
            Condition::AnyOf(s) => write!(f, "any of [{}]", list(s)),
            Condition::NoneOf(s) => write!(f, "none of [{}]", list(s)),
            Condition::And(a, b) => write!(f, "({a} and {b})"),
            Condition::Or(a, b) => write!(f, "({a} or {b})"),
            Condition::Xor(a, b) => write!(f, "({a} xor {b})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(sources: &[&str]) -> BTreeSet<String> {
        sources.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn combinators_follow_boolean_logic() {
        let a = || Condition::any_of(["a"]);
        let b = || Condition::any_of(["b"]);
        for (sources, and, or, xor) in [
            (&[][..], false, false, false),
            (&["a"][..], false, true, true),
            (&["b"][..], false, true, true),
            (&["a", "b"][..], true, true, false),
        ] {
            let p = present(sources);
            assert_eq!(a().and(b()).matches(&p), and, "{sources:?}");
            assert_eq!(a().or(b()).matches(&p), or, "{sources:?}");
            assert_eq!(a().xor(b()).matches(&p), xor, "{sources:?}");
        }
    }

    #[test]
    fn display_reads_like_the_condition() {
        let c = Condition::all_of(["a", "b"]).and(Condition::none_of(["x"]));
        assert_eq!(c.to_string(), "(all of [a, b] and none of [x])");
    }
}

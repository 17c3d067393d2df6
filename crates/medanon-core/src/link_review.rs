//! Review of what linking left open: the arguments of `review_link` and
//! `split_person`, checked before anything is read or written. The glue
//! (`src/link/review.rs`) reads the candidate or conflict, merges or keeps apart,
//! and logs the decision.

use crate::error::{quoted, InputError, Kind, Result};

/// What a review decides about a candidate or a conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// One person: the two persons merge into the older id.
    Same,
    /// Two persons: never merged by a later batch.
    Different,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Same => "same",
            Decision::Different => "different",
        }
    }
}

/// What is reviewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item {
    /// A row of link_candidates (fuzzy pair).
    Candidate,
    /// A row of link_conflict (one card, names that contradict).
    Conflict,
}

impl Item {
    pub fn as_str(self) -> &'static str {
        match self {
            Item::Candidate => "candidate",
            Item::Conflict => "conflict",
        }
    }
    /// The status a decided row takes in its table.
    pub fn status(self, d: Decision) -> &'static str {
        match (self, d) {
            (Item::Candidate, Decision::Same) => "accepted",
            (Item::Candidate, Decision::Different) => "rejected",
            (Item::Conflict, d) => d.as_str(),
        }
    }
}

fn required<'a>(what: &str, value: Option<&'a str>, hint: &str) -> Result<&'a str> {
    match value {
        None => Err(InputError::new(Kind::InvalidParameterValue, format!("{what} must not be NULL")).hint(hint)),
        Some(v) if v.trim().is_empty() => {
            Err(InputError::new(Kind::InvalidParameterValue, format!("{what} must not be empty")).hint(hint))
        }
        Some(v) => Ok(v),
    }
}

/// Who decided and why: both required, for the review log.
pub fn reviewer_and_reason<'a>(reviewer: Option<&'a str>, reason: Option<&'a str>) -> Result<(&'a str, &'a str)> {
    let reviewer = required("reviewer", reviewer, "name the person who decides, as the review log records it")?;
    let reason = required("reason", reason, "say why, for the review log (for example: same kanji name and card, kana typo)")?;
    Ok((reviewer, reason))
}

pub fn parse_item(kind: Option<&str>) -> Result<Item> {
    match required("kind", kind, "kind is 'candidate' or 'conflict'")? {
        "candidate" => Ok(Item::Candidate),
        "conflict" => Ok(Item::Conflict),
        other => Err(InputError::new(Kind::InvalidParameterValue, format!("unknown review kind {}", quoted(other)))
            .hint("kind is 'candidate' (link_candidates) or 'conflict' (link_conflict), as link_report() lists them")),
    }
}

pub fn parse_decision(decision: Option<&str>) -> Result<Decision> {
    match required("decision", decision, "decision is 'same' or 'different'")? {
        "same" => Ok(Decision::Same),
        "different" => Ok(Decision::Different),
        other => Err(InputError::new(Kind::InvalidParameterValue, format!("unknown decision {}", quoted(other)))
            .hint("decision is 'same' (one person: merge) or 'different' (two persons: never merge)")),
    }
}

/// The records a split moves: institution codes and local ids, pairwise; at least
/// one, none NULL or twice.
pub fn split_records(institutions: Option<Vec<Option<String>>>, locals: Option<Vec<Option<String>>>) -> Result<Vec<(String, String)>> {
    let hint = "pass the records to move as two arrays of equal length: ARRAY['H1', 'H2'], ARRAY['001', 'P9']";
    let (Some(institutions), Some(locals)) = (institutions, locals) else {
        return Err(InputError::new(Kind::InvalidParameterValue, "the records to move must not be NULL").hint(hint));
    };
    if institutions.len() != locals.len() {
        return Err(InputError::new(Kind::InvalidParameterValue, "institution codes and local ids differ in number")
            .detail(format!("{} institution codes, {} local ids", institutions.len(), locals.len()))
            .hint(hint));
    }
    if institutions.is_empty() {
        return Err(InputError::new(Kind::InvalidParameterValue, "no record to move").hint(hint));
    }
    let mut out = Vec::with_capacity(institutions.len());
    for (i, l) in institutions.into_iter().zip(locals) {
        let (Some(i), Some(l)) = (i, l) else {
            return Err(InputError::new(Kind::InvalidParameterValue, "a record to move is NULL").hint(hint));
        };
        if out.iter().any(|(a, b)| *a == i && *b == l) {
            return Err(InputError::new(Kind::InvalidParameterValue, "a record to move is named twice")
                .detail(format!("record {} {}", quoted(&i), quoted(&l)))
                .hint(hint));
        }
        out.push((i, l));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        assert_eq!(parse_decision(Some("same")), Ok(Decision::Same));
        assert_eq!(parse_decision(Some("different")), Ok(Decision::Different));
        for bad in [None, Some(""), Some("Same"), Some("maybe")] {
            assert_eq!(parse_decision(bad).unwrap_err().kind, Kind::InvalidParameterValue, "{bad:?}");
        }
        assert_eq!(parse_item(Some("conflict")), Ok(Item::Conflict));
        assert!(parse_item(Some("candidates")).unwrap_err().hint.is_some());
        assert_eq!(reviewer_and_reason(Some("dr. sato"), Some("same kanji")), Ok(("dr. sato", "same kanji")));
        assert!(reviewer_and_reason(Some(" "), Some("x")).is_err());
        assert!(reviewer_and_reason(Some("x"), None).is_err());
        assert_eq!(Item::Candidate.status(Decision::Same), "accepted");
        assert_eq!(Item::Conflict.status(Decision::Different), "different");
    }

    #[test]
    fn split_records_pair_up() {
        let s = |v: &[&str]| Some(v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>());
        assert_eq!(split_records(s(&["H1", "H2"]), s(&["1", "2"])).unwrap().len(), 2);
        assert!(split_records(s(&["H1"]), s(&["1", "2"])).unwrap_err().detail.is_some());
        assert!(split_records(s(&[]), s(&[])).is_err());
        assert!(split_records(s(&["H1", "H1"]), s(&["1", "1"])).is_err());
        assert!(split_records(Some(vec![None]), s(&["1"])).is_err());
        assert!(split_records(None, s(&["1"])).is_err());
    }
}

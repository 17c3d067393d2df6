//! medanon-core: the pure logic of medanon, free of PostgreSQL types, so that
//! `cargo test` and fuzzers reach it without a server. The extension crate wraps
//! each function and maps [`error::InputError`] to a PostgreSQL ERROR.
//!
//! Modules follow the pipeline: reading what institutions send (`jpdate`),
//! normalizing identifying fields and building link keys (`normalize`, `link`),
//! grouping records into persons (`link_group`), keyed pseudonyms (`keyed`), what
//! the calendar tells about a date shift (`closed_days`, `shift_attack`),
//! generalization and its search (`generalize`, `prefecture`, `hierarchy`,
//! `lattice`, `equivalence`), and exposure under contract (`contract`, the
//! planner `plan`, `view`, `cells`).

pub mod calendar;
pub mod cells;
pub mod classify_suggest;
pub mod closed_days;
pub mod contract;
pub mod derive;
pub mod equivalence;
pub mod export;
pub mod error;
pub mod generalize;
pub mod hierarchy;
pub mod icd10;
pub mod jpdate;
pub mod keyed;
pub mod lattice;
pub mod municipality;
pub mod link;
pub mod link_group;
pub mod link_review;
pub mod normalize;
pub mod plan;
pub mod prefecture;
pub mod refresh;
pub mod shift_attack;
pub mod view;

//! Anonymize: the treatments a column gets in a contract view. Identifiers become
//! tokens (`token`), dates move by a per-person offset (`dates`), and
//! quasi-identifiers are coarsened (`generalize`, and addresses to their
//! municipality in `municipality`).

pub mod dates;
pub mod dicom;
pub mod generalize;
pub mod municipality;
pub mod token;

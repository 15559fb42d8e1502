//! The exposure report: for every recipient a run takes off files, the files (and the encrypted
//! values) it could read, so the operator knows which credentials to change. It is read back
//! from a plan or a journal one recipient at a time and never held whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::plan::{Action, KeyPaths, Plan, Recipient};
use crate::state::{Journal, JournalEntry};
use crate::RekeyError;

/// What a removed recipient could read (collected: for workflows, whose share of a repo is small).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    /// The removed recipient.
    pub recipient: Recipient,
    /// The files it was a recipient of, with their encrypted key paths.
    pub files: Vec<ExposedFile>,
}

/// One file a removed recipient could read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExposedFile {
    /// The file, for display.
    pub path: String,
    /// The encrypted values it could read (`a.b.c`); rotate the credentials they hold.
    pub key_paths: KeyPaths,
    /// The file has several key groups: the recipient held one Shamir share, and could read
    /// the values only together with holders of enough other groups.
    pub shamir_share_only: bool,
}

/// One file and the recipients a run takes off it.
pub(crate) struct ExposedRow {
    pub(crate) removed: Vec<Recipient>,
    pub(crate) file: ExposedFile,
}

type Rows<'a> = Box<dyn Iterator<Item = Result<ExposedRow, RekeyError>> + 'a>;

enum Source<'a> {
    Plan(&'a Plan),
    Journal(&'a Journal),
}

/// What removed recipients could read, from a plan (what this run removes) or a journal (what
/// this run and the interrupted runs before it removed).
pub struct ExposureReport<'a> {
    recipients: Vec<Recipient>,
    source: Source<'a>,
}

impl<'a> ExposureReport<'a> {
    pub(crate) fn of_plan(plan: &'a Plan) -> Result<Self, RekeyError> {
        Self::new(Source::Plan(plan))
    }

    pub(crate) fn of_journal(journal: &'a Journal) -> Result<Self, RekeyError> {
        Self::new(Source::Journal(journal))
    }

    fn new(source: Source<'a>) -> Result<Self, RekeyError> {
        let mut report = Self {
            recipients: Vec::new(),
            source,
        };
        // One entry per recipient string, even when two runs named it differently.
        let mut recipients: BTreeMap<String, Recipient> = BTreeMap::new();
        for row in report.rows()? {
            for removed in row?.removed {
                recipients
                    .entry(removed.recipient.clone())
                    .or_insert(removed);
            }
        }
        report.recipients = recipients.into_values().collect();
        report.recipients.sort();
        Ok(report)
    }

    fn rows(&self) -> Result<Rows<'a>, RekeyError> {
        Ok(match self.source {
            // An unchanged file loses no recipient: a plan of only those is not read at all.
            Source::Plan(plan) if plan.count(Action::Unchanged) == plan.len() => {
                Box::new(std::iter::empty())
            }
            Source::Plan(plan) => Box::new(plan.files().filter_map(|file| {
                file.map(|file| JournalEntry::of(&file).exposed())
                    .transpose()
            })),
            Source::Journal(journal) => Box::new(
                journal
                    .entries()?
                    .filter_map(|entry| entry.map(|e| e.exposed()).transpose()),
            ),
        })
    }

    /// The recipients removed, sorted (by name, then recipient).
    pub fn recipients(&self) -> &[Recipient] {
        &self.recipients
    }

    /// Whether no recipient was removed.
    pub fn is_empty(&self) -> bool {
        self.recipients.is_empty()
    }

    /// The files `recipient` could read, in path order.
    pub fn files_of(
        &self,
        recipient: &Recipient,
    ) -> Result<impl Iterator<Item = Result<ExposedFile, RekeyError>> + 'a, RekeyError> {
        let wanted = recipient.recipient.clone();
        Ok(self.rows()?.filter_map(move |row| match row {
            Ok(row) => row
                .removed
                .iter()
                .any(|r| r.recipient == wanted)
                .then_some(Ok(row.file)),
            Err(e) => Some(Err(e)),
        }))
    }

    /// The whole report in memory (for workflows and small plans).
    pub fn collect(&self) -> Result<Vec<Exposure>, RekeyError> {
        self.recipients
            .iter()
            .map(|recipient| {
                Ok(Exposure {
                    recipient: recipient.clone(),
                    files: self.files_of(recipient)?.collect::<Result<_, _>>()?,
                })
            })
            .collect()
    }
}

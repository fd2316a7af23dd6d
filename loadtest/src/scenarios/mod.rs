//! The scenarios; each returns its JSON result.

mod clients;
mod drain;
mod echo;
mod fanout;
mod hold;
mod promote;
mod resume;

pub(crate) use clients::{Files, clients};
pub(crate) use drain::drain;
pub(crate) use echo::echo;
pub(crate) use fanout::fanout;
pub(crate) use hold::hold;
pub(crate) use promote::promote;
pub(crate) use resume::resume;

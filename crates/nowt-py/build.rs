// The same record of the commit as the nowt binary's (NOWT_GIT_COMMIT), for provenance.json.
include!("../nowt-cli/build.rs");

//! The Lua scripts of `lua/scripts/`, embedded at compile time, with their SHA1s.

use std::sync::LazyLock;

/// One script: its name (for errors), source and SHA1 (for EVALSHA).
#[derive(Debug)]
pub struct Script {
    pub name: &'static str,
    pub source: &'static str,
    pub sha: String,
}

impl Script {
    fn new(name: &'static str, source: &'static str) -> Self {
        let sha = redis::Script::new(source).get_hash().to_owned();
        Script { name, source, sha }
    }
}

/// Every script the ledger uses.
#[derive(Debug)]
pub struct Scripts {
    pub deduct: Script,
    pub release: Script,
    pub confirm: Script,
    pub create: Script,
    pub restock: Script,
    pub close: Script,
    pub audit: Script,
    pub lease: Script,
    pub claim: Script,
    pub set_status: Script,
    pub mirror: Script,
    pub buyer: Script,
}

impl Scripts {
    pub fn all(&self) -> [&Script; 12] {
        [
            &self.deduct,
            &self.release,
            &self.confirm,
            &self.create,
            &self.restock,
            &self.close,
            &self.audit,
            &self.lease,
            &self.claim,
            &self.set_status,
            &self.mirror,
            &self.buyer,
        ]
    }
}

macro_rules! script {
    ($name:literal) => {
        Script::new(
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/",
                $name,
                ".lua"
            )),
        )
    };
}

/// The scripts, hashed once per process.
pub static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    deduct: script!("deduct"),
    release: script!("release"),
    confirm: script!("confirm"),
    create: script!("create"),
    restock: script!("restock"),
    close: script!("close"),
    audit: script!("audit"),
    lease: script!("lease"),
    claim: script!("claim"),
    set_status: script!("set_status"),
    mirror: script!("mirror"),
    buyer: script!("buyer"),
});

//! The PKCS#11 library, loaded and initialised once per process and module path.
//!
//! `C_Initialize` may run only once per process, and SoftHSM is known to crash when sessions
//! are opened and closed concurrently: every provider in the process shares one [`Module`] per
//! library path, and opens and closes its sessions under the module's lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error, RvError};
use cryptoki::session::Session;
use cryptoki::slot::Slot;

pub(crate) struct Module {
    pub(crate) context: Pkcs11,
    session_churn: Mutex<()>,
}

impl Module {
    /// The process's module for `path`, loading and initialising the library on first use.
    pub(crate) fn load(path: &Path) -> Result<Arc<Module>, Error> {
        static LOADED: OnceLock<Mutex<HashMap<PathBuf, Arc<Module>>>> = OnceLock::new();
        let mut loaded = LOADED
            .get_or_init(Default::default)
            .lock()
            .expect("module registry poisoned");
        if let Some(module) = loaded.get(path) {
            return Ok(module.clone());
        }
        let context = Pkcs11::new(path)?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) | Err(Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(e),
        }
        let module = Arc::new(Module {
            context,
            session_churn: Mutex::new(()),
        });
        loaded.insert(path.to_owned(), module.clone());
        Ok(module)
    }

    pub(crate) fn open_session(&self, slot: Slot) -> Result<Session, Error> {
        let _churn = self.session_churn.lock().expect("session lock poisoned");
        self.context.open_rw_session(slot)
    }

    pub(crate) fn close_session(&self, session: Session) {
        let _churn = self.session_churn.lock().expect("session lock poisoned");
        if let Err(e) = session.close() {
            tracing::debug!("closing a PKCS#11 session: {}", crate::fault::describe(&e));
        }
    }
}
